package realize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/models/modeltest"
	"github.com/runpod-comfy/worker/pkg/pyenv"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// archiveTrees exports trees with `git archive` from local test
// repositories: the orchestrator's tests need real trees, not gitsrc's
// network code, which has its own tests. It counts exports per URL.
type archiveTrees struct {
	mu    sync.Mutex
	repos map[string]*gittest.Repo
	calls map[string]int
}

func (a *archiveTrees) Tree(ctx context.Context, url, ref, commit, dest string) error {
	a.mu.Lock()
	r := a.repos[url]
	a.calls[url]++
	a.mu.Unlock()
	if r == nil {
		return fmt.Errorf("unknown repo %s", url)
	}
	tmp := dest + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", r.Dir, commit, tmp))
	cmd.Env = gittest.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("archive: %v: %s", err, out)
	}
	os.RemoveAll(dest)
	return os.Rename(tmp, dest)
}

func (a *archiveTrees) count(url string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[url]
}

// fixture is a volume with a builds root, a models dir and a cache, plus
// the repositories, wheels and model server a version needs.
type fixture struct {
	t                          testing.TB
	volume, build, models, dir string
	core                       *gittest.Repo
	nodes                      map[string]*gittest.Repo
	trees                      *archiveTrees
	ms                         *modeltest.Server
	wheels                     string
	modelData                  map[string][]byte
	store                      *models.Store
	lock                       *lock.Lock
	saved                      atomic.Int32
	// inPlace realizes f.build itself, as with --target or COMFY_HOME.
	inPlace bool
	// raceDoc is raceSpec's version at the repositories' current heads.
	raceDoc func() string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	python := pyenvtest.Python(t)
	_ = python
	f := &fixture{t: t, dir: t.TempDir(), nodes: map[string]*gittest.Repo{}, modelData: map[string][]byte{}}
	f.volume = filepath.Join(f.dir, "volume")
	f.build = filepath.Join(f.volume, "builds", "comfy-v")
	f.models = filepath.Join(f.volume, "models")
	f.trees = &archiveTrees{repos: map[string]*gittest.Repo{}, calls: map[string]int{}}
	f.core = gittest.NewRepo(t)
	f.core.Commit("core", map[string]string{
		"main.py": "print('comfy')\n", "requirements.txt": "alpha\n", "comfy/__init__.py": "",
		"custom_nodes/example_node.py.example": "# example\n", "models/checkpoints/put_checkpoints_here": "",
	})
	f.trees.repos["https://github.com/comfyanonymous/ComfyUI"] = f.core
	for _, n := range []struct{ name, req string }{{"node-a", "beta\n"}, {"node-b", ""}} {
		r := gittest.NewRepo(t)
		files := map[string]string{"__init__.py": "NODE_CLASS_MAPPINGS = {}\n"}
		if n.req != "" {
			files["requirements.txt"] = n.req
		}
		r.Commit("init", files)
		f.nodes[n.name] = r
		f.trees.repos["https://github.com/o/"+n.name] = r
	}
	f.wheels = filepath.Join(f.dir, "wheels")
	os.MkdirAll(f.wheels, 0o755)
	for _, w := range []string{"alpha", "beta", "gamma"} {
		if _, err := pyenvtest.BuildWheel(f.wheels, w, "1.0", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	f.ms = modeltest.NewServer()
	t.Cleanup(f.ms.Close)
	var err error
	f.store, err = models.New(models.Config{Root: filepath.Join(f.volume, "cache"), MaxAttempts: 2, BackoffBase: 1})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// addModel serves n bytes at /name and returns its sha256.
func (f *fixture) addModel(name string, n int) string {
	data := bytes.Repeat([]byte(name), n/len(name)+1)[:n]
	f.modelData[name] = data
	f.ms.Add("/"+name, data)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// specDoc pins the fixture's repos at their current heads.
func (f *fixture) specDoc(models string) string {
	return fmt.Sprintf(`{"schema_version": 2, "version_id": "v",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main", "commit": "%s"},
	  "custom_nodes": [
	    {"repo": "https://github.com/o/node-a", "commit": "%s"},
	    {"repo": "https://github.com/o/node-b", "commit": "%s", "install_requirements": false}],
	  "models": [%s], "python_packages": ["gamma"]}`, f.core.Head(), f.nodes["node-a"].Head(), f.nodes["node-b"].Head(), models)
}

func (f *fixture) setSpec(doc string) {
	f.t.Helper()
	s, err := spec.Decode([]byte(doc), "")
	if err != nil {
		f.t.Fatal(err)
	}
	l, _, err := lock.Resolve(context.Background(), s, f.lock, nil, lock.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.lock = l
}

func (f *fixture) config() Config {
	return Config{
		BuildDir: f.build, ModelsDir: f.models, Jobs: 4, Trees: f.trees, Models: f.store,
		Python:   pyenv.Config{WheelsDir: f.wheels, Offline: true, UV: pyenv.UVNever, Env: pyenvtest.IsolatedEnv()},
		SaveLock: func(*lock.Lock) error { f.saved.Add(1); return nil },
		InPlace:  f.inPlace,
	}
}

func (f *fixture) realize() *Result {
	f.t.Helper()
	res, err := Realize(context.Background(), f.config(), f.lock)
	if err != nil {
		f.t.Fatalf("realize: %v", err)
	}
	return res
}

func actions(res *Result) string {
	var parts []string
	for _, s := range res.Steps {
		parts = append(parts, s.Name+"="+s.Action)
	}
	return strings.Join(parts, " ")
}

// python runs code with the build's interpreter, as ComfyUI would be run.
func pythonIn(t testing.TB, build, code string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(build, ".venv", "bin", "python"), "-c", code)
	cmd.Env = pyenvtest.IsolatedEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build python: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}
