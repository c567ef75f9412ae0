package multihost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/internal/gobuild"
	"github.com/runpod-comfy/worker/internal/netvol"
	"github.com/runpod-comfy/worker/pkg/models/modeltest"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
	"github.com/runpod-comfy/worker/pkg/realize/realizetest"
)

// binaries builds the worker and the fake ComfyUI once per test binary.
func binaries(t testing.TB) (string, string) {
	t.Helper()
	var flags []string
	if raceBuild && os.Getenv("MULTIHOST_RACE_WORKER") != "" {
		flags = append(flags, "-race")
	}
	return gobuild.MustBinary(t, gobuild.Worker, flags...), gobuild.MustBinary(t, gobuild.FakeComfy)
}

// volume is a network volume shared by simulated hosts, with the version
// they realize: ComfyUI and three custom nodes served over smart HTTP,
// three models (one with a checksum, one without, one inside a node's
// folder) and a venv.
type volume struct {
	t             *testing.T
	shared, mount string // the volume's contents outside the hosts, and where hosts see it
	hosts         []*netvol.Host
	local         []string // each host's COMFY_LOCAL_DIR (its container disk)
	git           *gittest.Server
	nodes         []*gittest.Repo
	core          *gittest.Repo
	ms            *modeltest.Server
	// files are the models' files, relative to the build or, with a
	// "$MODELS_DIR/" prefix, to the models directory, with their sha256.
	files     map[string]string
	modelSize map[string]int
	env       []string
}

func newVolume(t *testing.T, hosts int) *volume {
	t.Helper()
	pyenvtest.Python(t)
	bin, fake := binaries(t)
	v := &volume{t: t, shared: t.TempDir(), mount: filepath.Join(t.TempDir(), "runpod-volume"),
		git: gittest.NewServer(t), ms: modeltest.NewServer(), files: map[string]string{}, modelSize: map[string]int{}}
	t.Cleanup(v.ms.Close)
	v.core = gittest.NewRepo(t)
	v.core.Commit("core", map[string]string{
		"main.py":           "import os, sys\nexe = os.environ.get('FAKE_COMFY_BIN')\nif exe:\n    os.execv(exe, [exe] + sys.argv)\nprint('no fake')\n",
		"comfy/cli_args.py": "# --database-url\n", "comfy/__init__.py": "", "models/checkpoints/put_here": "",
	})
	v.git.Add("github.com/comfyanonymous/ComfyUI", v.core)
	for i := range 3 {
		r := gittest.NewRepo(t)
		r.Commit("node", map[string]string{"__init__.py": fmt.Sprintf("NODE_CLASS_MAPPINGS = {}\nN = %d\n", i), "web/app.js": strings.Repeat("x", 8000)})
		v.git.Add(fmt.Sprintf("github.com/acme/node%d", i), r)
		v.nodes = append(v.nodes, r)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range []struct {
		name, file string
		size       int
	}{
		{"m1.safetensors", "$MODELS_DIR/checkpoints/m1.safetensors", 3 << 20},
		{"m2.safetensors", "$MODELS_DIR/loras/m2.safetensors", 2 << 20},
		{"m3.bin", "custom_nodes/node1/ckpt/m3.bin", 1 << 20},
	} {
		data := make([]byte, m.size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		v.ms.Add("/"+m.name, data)
		v.ms.Throttle("/"+m.name, 24<<20) // hosts that start together overlap
		sum := sha256.Sum256(data)
		v.files[m.file] = hex.EncodeToString(sum[:])
		v.modelSize[m.name] = m.size
		if strings.HasPrefix(m.file, "$MODELS_DIR/") {
			v.files["models/"+strings.TrimPrefix(m.file, "$MODELS_DIR/")] = v.files[m.file]
		}
	}
	for range hosts {
		v.hosts = append(v.hosts, netvol.HostT(t, netvol.HostOptions{Shared: v.shared, MountPath: v.mount, Mount: cached}))
		v.local = append(v.local, filepath.Join(t.TempDir(), "local"))
	}
	v.env = append(pyenvtest.IsolatedEnv(), "COMFY_LOG_FORMAT=json", "FAKE_COMFY_BIN="+fake,
		"COMFY_GIT_REWRITE=https://github.com/="+v.git.URL+"/github.com/")
	_ = bin
	return v
}

// spec is the version's spec with the nodes at their current heads.
func (v *volume) spec(id string) string {
	var nodes []string
	for i := range v.nodes {
		nodes = append(nodes, fmt.Sprintf(`{"repo": "https://github.com/acme/node%d", "ref": "main", "install_requirements": false}`, i))
	}
	return fmt.Sprintf(`{"schema_version": 2, "version_id": "%s",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "commit": "%s"},
	  "custom_nodes": [%s],
	  "models": [{"source": "%s", "target_path": "$MODELS_DIR/checkpoints/m1.safetensors", "checksum": "sha256:%s"},
	    {"source": "%s", "target_path": "$MODELS_DIR/loras/m2.safetensors"},
	    {"source": "%s", "target_path": "$COMFY_HOME/custom_nodes/node1/ckpt/m3.bin"}]}`,
		id, v.core.Head(), strings.Join(nodes, ","), v.ms.Path("m1.safetensors"), v.files["$MODELS_DIR/checkpoints/m1.safetensors"],
		v.ms.Path("m2.safetensors"), v.ms.Path("m3.bin"))
}

// round makes a fresh volume root on the shared volume, holding the spec
// of version id: each round realizes a version nobody built yet.
func (v *volume) round(name, id string) {
	v.t.Helper()
	dir := filepath.Join(v.shared, name, "versions")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(v.spec(id)), 0o644); err != nil {
		v.t.Fatal(err)
	}
}

// worker is the worker binary on host i, with round's directory of the
// volume as its RUNPOD_VOLUME_ROOT (everything it keeps goes there).
func (v *volume) worker(ctx context.Context, i int, round string, args ...string) *exec.Cmd {
	bin, _ := binaries(v.t)
	cmd := v.hosts[i].Command(ctx, bin, args...)
	root := filepath.Join(v.mount, round)
	cmd.Env = append(append([]string(nil), v.env...), "RUNPOD_VOLUME_ROOT="+root, "COMFY_VERSIONS_DIR="+filepath.Join(root, "versions"),
		"COMFY_SCRATCH_DIR="+filepath.Join(v.t.TempDir(), "scratch"), "COMFY_LOCAL_DIR="+v.local[i])
	return cmd
}

// result is one finished worker command.
type result struct {
	out, errs string
	err       error
	took      time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("%v after %v\nstdout:\n%s\nstderr (end):\n%s", r.err, r.took.Round(time.Millisecond), r.out, tail(r.errs, 25))
}

// run runs cmd to its end.
func run(cmd *exec.Cmd) result {
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	start := time.Now()
	err := cmd.Run()
	return result{out: out.String(), errs: errs.String(), err: err, took: time.Since(start)}
}

// together runs one command per host in hosts at the same moment.
func together(cmds []*exec.Cmd) []result {
	res := make([]result, len(cmds))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range cmds {
		wg.Go(func() {
			<-start
			res[i] = run(c)
		})
	}
	close(start)
	wg.Wait()
	return res
}

// build is the concrete build version id points to in round, seen from
// outside the hosts.
func (v *volume) build(round, id string) string {
	v.t.Helper()
	pointer := filepath.Join(v.shared, round, "builds", "comfy-"+id)
	target, err := filepath.EvalSymlinks(pointer)
	if err != nil {
		v.t.Fatalf("no build for %s in %s: %v", id, round, err)
	}
	return target
}

// checkModels checks every model's file in the build and the models
// directory of round against its sha256.
func (v *volume) checkModels(round, build string) {
	v.t.Helper()
	for rel, want := range v.files {
		p := filepath.Join(build, rel)
		if shared, ok := strings.CutPrefix(rel, "$MODELS_DIR/"); ok {
			p = filepath.Join(v.shared, round, "models", shared)
		}
		if got := realizetest.Digest(v.t, p); got != want {
			v.t.Errorf("%s: %s holds sha256 %s, want %s", round, rel, got, want)
		}
	}
}

// downloads counts the model requests the server answered so far.
func (v *volume) downloads() int {
	n := 0
	for name := range v.modelSize {
		n += len(v.ms.Requests("/" + name))
	}
	return n
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cached is how each host's kernel caches the volume's names and
// attributes, as an NFS client does (its shortest default is 3 s): what
// one host changes, another may see a moment late. Without it every
// path component of every file operation is a round trip, which makes a
// venv's thousands of files take seconds more than on a real volume.
var cached = netvol.Options{EntryTimeout: time.Second, AttrTimeout: time.Second}
