package version

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/internal/netvol"
	"github.com/runpod-comfy/worker/pkg/models/modeltest"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
	"github.com/runpod-comfy/worker/pkg/snapshot"
)

const modelBytes = "tiny model weights"

// netEnv is env with the cache, builds and models on a simulated network
// volume and local copies on local disk. The version's core requires a
// package with a console script, and it has one shared model.
//
// The test process serves the volume itself, so nothing it runs may fork
// a child that touches the volume: a garbage collection that starts while
// the fork waits on the volume stops the very server it waits for (the
// runtime cannot stop a thread inside vfork). Realizes, which run pip and
// Python, therefore go through backing: the volume's directory as the host
// that realized it sees it. The cases read through the mount, as workers
// on other hosts do, and fork nothing that touches it.
type netEnv struct {
	*env
	vol     *netvol.Volume
	backing Config
}

func newNetEnv(t *testing.T) *netEnv {
	t.Helper()
	pyenvtest.Python(t)
	e := newEnv(t)
	dir := t.TempDir()
	n := &netEnv{env: e, vol: netvol.MountT(t, dir, "", netvol.Options{})}
	for _, c := range []struct {
		cfg  *Config
		root string
	}{{&n.backing, dir}, {&e.cfg, n.vol.Dir()}} {
		*c.cfg = e.cfg
		c.cfg.CacheRoot = filepath.Join(c.root, "cache")
		c.cfg.BuildsRoot = filepath.Join(c.root, "builds")
		c.cfg.ModelsDir = filepath.Join(c.root, "models")
		c.cfg.Local = LocalConfig{Dir: filepath.Join(e.dir, "local"), Keep: 2}
	}
	e.core.Commit("requirements", map[string]string{"requirements.txt": "alpha\n"})
	if _, err := (pyenvtest.Wheel{Name: "alpha", Version: "1.0",
		Files:          map[string]string{"alpha/__init__.py": "def main():\n    print('alpha-cli ok')\n"},
		ConsoleScripts: map[string]string{"alpha-cli": "alpha:main"}}).Build(e.cfg.WheelsDir); err != nil {
		t.Fatal(err)
	}
	ms := modeltest.NewServer()
	t.Cleanup(ms.Close)
	ms.Add("/m/tiny.safetensors", []byte(modelBytes))
	os.WriteFile(filepath.Join(e.versions, "v.json"), []byte(`{"schema_version": 2, "version_id": "v",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main"},
	  "models": [{"source": "`+ms.Path("/m/tiny.safetensors")+`", "target_path": "$MODELS_DIR/checkpoints/tiny.safetensors"}]}`), 0o644)
	n.realize(t, false)
	return n
}

// realize realizes v on the realizing host (update: following its branch).
func (n *netEnv) realize(t *testing.T, update bool) {
	t.Helper()
	m := Open(n.backing)
	s, err := m.Load("v")
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := m.Lock(context.Background(), s, LockOptions{Update: update})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Realize(context.Background(), s, l, nil); err != nil {
		t.Fatal(err)
	}
}

func prepareLocal(t *testing.T, m *Manager) (*Build, *Build, func()) {
	t.Helper()
	b, err := m.Prepare(context.Background(), "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	run, release, err := b.Local(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b, run, release
}

// TestLocalCopies runs its cases in order on one realized version (a
// realize is the slow part); the last one changes the build.
func TestLocalCopies(t *testing.T) {
	n := newNetEnv(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *netEnv)
	}{
		{"runs without the volume", localCopyRunsWithoutTheVolume},
		{"snapshot once per build", snapshotOncePerBuild},
		{"damaged snapshot packed again", damagedSnapshotIsPackedAgain},
		{"build updated while its copy runs", buildUpdatedWhileCopyRuns},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n.cfg.Local.Dir = t.TempDir() // each case starts on a fresh host
			tc.test(t, n)
		})
	}
}

// localCopyRunsWithoutTheVolume: the copy's venv works from its new path
// (interpreter, packages, console scripts), Python opens nothing on the
// volume, and the models are still the volume's.
func localCopyRunsWithoutTheVolume(t *testing.T, e *netEnv) {
	m, vol := Open(e.cfg), e.vol
	b, run, release := prepareLocal(t, m)
	defer release()
	if !run.LocalCopy || !strings.HasPrefix(run.Dir, e.cfg.Local.Dir) || run.Source != b.Dir || run.Digest != b.Digest {
		t.Fatalf("run = %+v; want a local copy of %s", run, b.Dir)
	}
	vol.ResetStats()
	out, err := exec.Command(run.Python, "-c", "import sys, alpha; print(sys.prefix); print(alpha.__file__)").CombinedOutput()
	if err != nil {
		t.Fatalf("python of the copy: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	if len(lines) != 2 || lines[0] != filepath.Join(run.Dir, ".venv") || !strings.HasPrefix(lines[1], run.Dir+"/") {
		t.Errorf("python of the copy: prefix and package at %q; want both inside %s", lines, run.Dir)
	}
	// The bytecode compiled on the volume is valid in the copy (sources
	// keep their mtimes): Python neither recompiles nor rewrites it.
	out, err = exec.Command(run.Python, "-v", "-c", "import alpha").CombinedOutput()
	if lines := grepLines(string(out), "/alpha/"); err != nil || !strings.Contains(lines, ".pyc matches") ||
		strings.Contains(lines, "bad mtime") || strings.Contains(lines, "# wrote") {
		t.Errorf("importing alpha from the copy did not use its compiled bytecode: %v\n%s", err, lines)
	}
	if out, err := exec.Command(filepath.Join(run.Dir, ".venv", "bin", "alpha-cli")).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "alpha-cli ok" {
		t.Errorf("console script of the copy: %v %q", err, out)
	}
	if st := vol.Stats(); st.Opens != 0 || st.Lookups != 0 {
		t.Errorf("running Python from the copy touched the volume: %+v", st)
	}
	rows, err := m.List()
	if err != nil || len(rows) != 1 || rows[0].Local != "yes" || rows[0].LocalCopy != run.Dir {
		t.Errorf("list: %+v, %v; want v with its local copy", rows, err)
	}
	other := m.cfg
	other.Local.Dir = t.TempDir()
	if rows, _ := Open(other).List(); len(rows) != 1 || rows[0].Local != "no" {
		t.Errorf("list on a host without a copy: %+v", rows)
	}
	for _, p := range []string{
		filepath.Join(run.Dir, "models", "checkpoints", "tiny.safetensors"),      // the build's link, as nodes see it
		filepath.Join(modelsBase(t, run.Dir), "checkpoints", "tiny.safetensors"), // what extra_model_paths.yaml names
	} {
		if data, err := os.ReadFile(p); err != nil || string(data) != modelBytes {
			t.Errorf("model through %s: %q, %v", p, data, err)
		}
	}
}

// modelsBase is the base_path of the copy's extra_model_paths.yaml.
func modelsBase(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "extra_model_paths.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "base_path:"); ok {
			v = strings.Trim(strings.TrimSpace(v), "'")
			if !filepath.IsAbs(v) {
				t.Errorf("base_path %q in the copy is relative: it would resolve against local disk", v)
			}
			return v
		}
	}
	t.Fatal("no base_path")
	return ""
}

// snapshotOncePerBuild: realize packs the snapshot once; another realize,
// a prepare from memory and another host's first job reuse it.
func snapshotOncePerBuild(t *testing.T, e *netEnv) {
	m := Open(e.cfg)
	b, _, release := prepareLocal(t, m)
	release()
	snap, err := os.Stat(m.SnapshotPath(b.Key))
	if err != nil {
		t.Fatalf("realize wrote no snapshot: %v", err)
	}
	e.realize(t, false)
	cfg := e.cfg
	cfg.Local.Dir = t.TempDir()
	other := Open(cfg)
	b2, run, release := prepareLocal(t, other)
	defer release()
	if b2.Key != b.Key || !run.LocalCopy {
		t.Fatalf("another host: key %s (want %s), local %v", b2.Key, b.Key, run.LocalCopy)
	}
	if now, err := os.Stat(m.SnapshotPath(b.Key)); err != nil || !os.SameFile(snap, now) {
		t.Error("the snapshot was written again")
	}
	if snaps, _ := os.ReadDir(filepath.Dir(m.SnapshotPath(b.Key))); len(snaps) != 1 {
		t.Errorf("snapshots: %d files; want 1", len(snaps))
	}
}

// buildUpdatedWhileCopyRuns: a new build on the volume gets its own key
// and copy; the copy ComfyUI runs stays as it was until released, and is
// then evicted when a newer one needs the room.
func buildUpdatedWhileCopyRuns(t *testing.T, e *netEnv) {
	e.cfg.Local.Keep = 1
	m := Open(e.cfg)
	b1, run1, release1 := prepareLocal(t, m)
	e.core.Commit("v2", map[string]string{"main.py": "print('comfy v2')\n"})
	e.realize(t, true)
	b2, run2, release2 := prepareLocal(t, m)
	defer release2()
	if b2.Key == b1.Key || run2.Dir == run1.Dir {
		t.Fatalf("the updated build kept key %s and copy %s", b2.Key, run2.Dir)
	}
	if data, _ := os.ReadFile(filepath.Join(run1.Dir, "main.py")); string(data) != "print('comfy')\n" {
		t.Errorf("the running copy changed under it: main.py %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(run2.Dir, "main.py")); string(data) != "print('comfy v2')\n" {
		t.Errorf("the new copy has main.py %q", data)
	}
	release1()
	// A third build: with room for one copy, the released old one goes and
	// the one in use stays.
	e.core.Commit("v3", map[string]string{"main.py": "print('comfy v3')\n"})
	e.realize(t, true)
	_, _, release3 := prepareLocal(t, m)
	release3()
	if _, err := os.Stat(run1.Dir); err == nil {
		t.Error("the released old copy was not evicted")
	}
	if _, err := os.Stat(filepath.Join(run2.Dir, "main.py")); err != nil {
		t.Error("the copy in use was evicted")
	}
}

// damagedSnapshotIsPackedAgain: a truncated snapshot is never run; the
// copy is made from the build and the snapshot replaced.
func damagedSnapshotIsPackedAgain(t *testing.T, e *netEnv) {
	m := Open(e.cfg)
	key, err := BuildKey("v", m.BuildDir("v"))
	if err != nil {
		t.Fatal(err)
	}
	p := m.SnapshotPath(key)
	fi, _ := os.Stat(p)
	os.Truncate(p, fi.Size()/2)
	b, run, release := prepareLocal(t, m)
	defer release()
	if !run.LocalCopy {
		t.Fatal("no local copy")
	}
	if _, err := os.Stat(filepath.Join(run.Dir, "main.py")); err != nil {
		t.Error("the copy lacks main.py")
	}
	if _, _, err := snapshot.UnpackFile(context.Background(), p, t.TempDir(), snapshot.UnpackOptions{Key: b.Key, Source: b.Source}); err != nil {
		t.Errorf("the damaged snapshot was not replaced: %v", err)
	}
}

// TestNoCopyOfALocalBuild: a build on the copies' own file system runs
// where it is; one on another (a network volume) is copied, and copies
// off means none is.
func TestNoCopyOfALocalBuild(t *testing.T) {
	dir := t.TempDir()
	vol := netvol.MountT(t, t.TempDir(), "", netvol.Options{})
	for _, tc := range []struct {
		name, local, build string
		want               bool
	}{
		{"same disk", filepath.Join(dir, "local"), filepath.Join(dir, "builds", "comfy-v"), false},
		{"network volume", filepath.Join(dir, "local"), filepath.Join(vol.Dir(), "builds", "comfy-v"), true},
		{"copies off", "", filepath.Join(vol.Dir(), "builds", "comfy-v"), false},
	} {
		m := Open(Config{Local: LocalConfig{Dir: tc.local}})
		if got := m.wantsLocal(tc.build); got != tc.want {
			t.Errorf("%s: copied %v, want %v", tc.name, got, tc.want)
		}
	}
	b := &Build{VersionID: "v", Dir: dir} // as Prepare returns a build that runs where it is
	if run, release, err := b.Local(context.Background()); run != b || err != nil {
		t.Errorf("Local of a build without copies = %+v, %v", run, err)
	} else {
		release()
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
