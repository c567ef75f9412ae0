package version

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/internal/leaktest"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
)

func TestMain(m *testing.M) { leaktest.Main(m, leaktest.Options{Grace: 5 * time.Second}) }

// env is a volume (cache, builds, models, spec directories) with ComfyUI
// and a node served over smart HTTP under github.com names.
type env struct {
	t         *testing.T
	dir       string
	srv       *gittest.Server
	core      *gittest.Repo
	cfg       Config
	versions  string
	extraDirs string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	srv := gittest.NewServer(t)
	core := gittest.NewRepo(t)
	core.Commit("core", map[string]string{"main.py": "print('comfy')\n", "requirements.txt": ""})
	srv.Add("github.com/comfyanonymous/ComfyUI", core)
	e := &env{t: t, dir: dir, srv: srv, core: core, versions: filepath.Join(dir, "versions"), extraDirs: filepath.Join(dir, "extra")}
	os.MkdirAll(e.versions, 0o755)
	os.MkdirAll(e.extraDirs, 0o755)
	e.cfg = Config{
		VersionsDir: e.versions, ExtraSpecDirs: []string{e.extraDirs}, Volume: filepath.Join(dir, "volume"),
		CacheRoot: filepath.Join(dir, "cache"), BuildsRoot: filepath.Join(dir, "builds"),
		ModelsDir: filepath.Join(dir, "models"), WheelsDir: filepath.Join(dir, "wheels"),
		GitRewrites: []gitsrc.Rewrite{{From: "https://github.com/", To: srv.URL + "/github.com/"}},
		Logger:      zerolog.Nop(),
	}
	os.MkdirAll(e.cfg.WheelsDir, 0o755)
	return e
}

func (e *env) spec(dir, id, ref string) string {
	e.t.Helper()
	p := filepath.Join(dir, id+".json")
	body := `{"schema_version": 2, "version_id": "` + id + `",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "` + ref + `"}}`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func TestFindSearchesSpecDirsInOrder(t *testing.T) {
	e := newEnv(t)
	m := Open(e.cfg)
	volDir := filepath.Join(e.cfg.Volume, "versions")
	os.MkdirAll(volDir, 0o755)
	first := e.spec(e.versions, "both", "main")
	e.spec(e.extraDirs, "both", "main")
	extra := e.spec(e.extraDirs, "extra-only", "main")
	vol := e.spec(volDir, "vol-only", "main")
	for _, tc := range []struct{ id, want string }{{"both", first}, {"extra-only", extra}, {"vol-only", vol}} {
		got, err := m.Find(tc.id)
		if err != nil || got != tc.want {
			t.Errorf("Find(%s) = %q, %v; want %q", tc.id, got, err, tc.want)
		}
	}
	_, err := m.Find("missing")
	var nf *spec.NotFoundError
	if !errors.As(err, &nf) || len(nf.Dirs) != 3 {
		t.Errorf("Find(missing) = %v; want a NotFoundError naming the 3 directories", err)
	}
	specs, err := m.Specs()
	if err != nil || len(specs) != 3 {
		t.Errorf("Specs() = %v, %v; want both, extra-only and vol-only once each", specs, err)
	}
}

func TestLoadRefusesUnusableModelSource(t *testing.T) {
	e := newEnv(t)
	os.WriteFile(filepath.Join(e.versions, "bad.json"), []byte(`{"schema_version": 2, "version_id": "bad",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main"},
	  "models": [{"source": "civitai://models/notanumber", "target_path": "$MODELS_DIR/loras/x.safetensors"}]}`), 0o644)
	_, err := Open(e.cfg).Load("bad")
	if !spec.IsInvalid(err) || !strings.Contains(err.Error(), "notanumber") {
		t.Fatalf("Load = %v; want an invalid-spec error naming the source", err)
	}
}

// TestLockReusesResolvesAndUpdates: an unchanged spec is answered from
// the lock without the network; an edit re-resolves and writes; NoSave
// writes nothing; Update follows the branch; Offline refuses a miss.
func TestLockReusesResolvesAndUpdates(t *testing.T) {
	e := newEnv(t)
	m := Open(e.cfg)
	ctx := context.Background()
	e.spec(e.versions, "v", "main")
	s, err := m.Load("v")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Lock(ctx, s, LockOptions{NoSave: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.LockPath("v")); !os.IsNotExist(err) {
		t.Fatal("NoSave wrote the lock")
	}
	l, st, err := m.Lock(ctx, s, LockOptions{})
	if err != nil || st.Reused || l.Comfy.Commit != e.core.Head() {
		t.Fatalf("first Lock = %+v, %+v, %v", l.Comfy, st, err)
	}
	if on, _ := lock.Read(m.LockPath("v")); on == nil || on.SourceSpec != filepath.Join(e.versions, "v.json") {
		t.Errorf("lock on disk = %+v; want it written with the spec's absolute path", on)
	}
	before := e.srv.Requests()
	if _, st, err = m.Lock(ctx, s, LockOptions{}); err != nil || !st.Reused || e.srv.Requests() != before {
		t.Errorf("unchanged spec: reused=%v, requests %d, err %v; want reused without the network", st.Reused, e.srv.Requests()-before, err)
	}
	old := e.core.Head()
	e.core.Commit("next", map[string]string{"next.py": ""})
	if l, _, _ = m.Lock(ctx, s, LockOptions{}); l.Comfy.Commit != old {
		t.Errorf("a branch drifted without --update: %s", l.Comfy.Commit)
	}
	if l, _, err = m.Lock(ctx, s, LockOptions{Update: true}); err != nil || l.Comfy.Commit != e.core.Head() {
		t.Errorf("Update: commit %s, %v; want %s", l.Comfy.Commit, err, e.core.Head())
	}
	e.spec(e.versions, "w", "main")
	w, _ := m.Load("w")
	var oe *lock.OfflineError
	if _, _, err := m.Lock(ctx, w, LockOptions{Offline: true}); !errors.As(err, &oe) {
		t.Errorf("Offline without a lock = %v; want an OfflineError", err)
	}
}

// TestPrepareRemembersBuildsUntilTheirFilesChange: a prepared version is
// answered from memory, and a change on disk to its spec, its lock or its
// build's marker makes the next Prepare look again.
func TestPrepareRemembersBuildsUntilTheirFilesChange(t *testing.T) {
	pyenvtest.Python(t)
	e := newEnv(t)
	specPath := e.spec(e.versions, "v", "main")
	m := Open(e.cfg)
	ctx := context.Background()
	var events int
	b, err := m.Prepare(ctx, "v", func(progress.Event) { events++ })
	if err != nil {
		t.Fatal(err)
	}
	if events == 0 {
		t.Error("Prepare reported no progress while realizing")
	}
	// The build is the concrete one the version's pointer names, which a
	// later realize may switch while this one keeps running.
	current, _ := filepath.EvalSymlinks(m.BuildDir("v"))
	if b.VersionID != "v" || b.Dir != current || b.Python != filepath.Join(b.Dir, ".venv", "bin", "python") || b.Digest == "" {
		t.Fatalf("build = %+v", b)
	}
	if _, err := os.Stat(b.Python); err != nil {
		t.Fatalf("build has no python: %v", err)
	}
	marker := filepath.Join(b.Dir, realize.MarkerFile)
	touches := 0
	touch := func(p string) {
		t.Helper()
		touches++
		later := time.Now().Add(time.Duration(touches) * time.Second)
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		change   func()
		cached   bool
		newBuild bool
	}{
		{"unchanged", func() {}, true, false},
		{"spec touched", func() { touch(specPath) }, false, false},
		{"lock touched", func() { touch(m.LockPath("v")) }, false, false},
		{"marker touched", func() { touch(marker) }, false, false},
		{"spec edited", func() {
			e.core.Commit("v2", map[string]string{"v2.py": ""})
			e.spec(e.versions, "v", "main")
			os.WriteFile(specPath, []byte(`{"schema_version": 2, "version_id": "v", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "commit": "`+e.core.Head()+`"}}`), 0o644)
		}, false, true},
	} {
		tc.change()
		before := e.srv.Requests()
		got, err := m.Prepare(ctx, "v", nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.cached && (got != b || e.srv.Requests() != before) {
			t.Errorf("%s: not answered from memory", tc.name)
		}
		if !tc.cached && got == b {
			t.Errorf("%s: answered from memory although a file changed", tc.name)
		}
		if tc.newBuild == (got.Digest == b.Digest) {
			t.Errorf("%s: digest %s, before %s; new build wanted: %v", tc.name, got.Digest, b.Digest, tc.newBuild)
		}
		b = got
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "v2.py")); err != nil {
		t.Errorf("the edited spec's commit is not in the build: %v", err)
	}
}

// TestDeleteRefusesWhatIsNotABuild: roots, the cache and directories the
// worker did not make are refused before anything is removed.
func TestDeleteRefusesWhatIsNotABuild(t *testing.T) {
	e := newEnv(t)
	foreign := filepath.Join(e.dir, "mine")
	os.MkdirAll(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("keep"), 0o644)
	for _, tc := range []struct {
		name, target string
		explicit     bool
		input        bool // an InputError (exit 2), else another error
	}{
		{"builds root", e.cfg.BuildsRoot, true, true},
		{"cache root", e.cfg.CacheRoot, true, true},
		{"parent of the cache", e.dir, true, true},
		{"outside without --target", foreign, false, true},
		{"foreign directory", foreign, true, false},
	} {
		cfg := e.cfg
		cfg.Target = tc.target
		_, err := Open(cfg).Delete(context.Background(), "v", DeleteOptions{Explicit: tc.explicit})
		var ie *InputError
		if err == nil || errors.As(err, &ie) != tc.input {
			t.Errorf("%s: Delete = %v; want refusal (input error: %v)", tc.name, err, tc.input)
		}
	}
	if _, err := os.Stat(filepath.Join(foreign, "notes.txt")); err != nil {
		t.Fatal("a refused delete removed a file")
	}
}
