package realize

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models/modeltest"
	"github.com/runpod-comfy/worker/pkg/spec"
)

func TestRealizeIncremental(t *testing.T) {
	f := newFixture(t)
	shaA := f.addModel("a.safetensors", 300_000)
	f.addModel("b.bin", 1000)
	f.addModel("c.bin", 500)
	modelsJSON := fmt.Sprintf(`{"source": "%s", "target_path": "$MODELS_DIR/loras/a.safetensors", "checksum": "sha256:%s"},
	  {"source": "%s", "target_path": "$COMFY_HOME/custom_nodes/node-a/ckpt/b.bin"},
	  {"source": "%s", "target_path": "$MODELS_DIR/odd_folder/b.bin"}`,
		f.ms.Path("a.safetensors"), shaA, f.ms.Path("b.bin"), f.ms.Path("b.bin"))
	f.setSpec(f.specDoc(modelsJSON))

	res := f.realize()
	if got := actions(res); got != "core=done custom_nodes=done models=done python=done models=done extra_model_paths=done" {
		t.Fatalf("first realize: %s", got)
	}
	for _, p := range []string{"main.py", "comfy/__init__.py", "custom_nodes/example_node.py.example", "custom_nodes/node-a/__init__.py",
		"custom_nodes/node-b/__init__.py", "custom_nodes/node-a/ckpt/b.bin", "extra_model_paths.yaml", MarkerFile} {
		if !exists(filepath.Join(f.build, p)) {
			t.Errorf("%s missing from the build", p)
		}
	}
	got, _ := os.ReadFile(filepath.Join(f.models, "loras", "a.safetensors"))
	if string(got) != string(f.modelData["a.safetensors"]) {
		t.Error("model a has wrong content")
	}
	// One resolution installed core's, node-a's and the extra package's
	// requirements; node-b opted out.
	if out := pythonIn(t, f.build, "import alpha, beta, gamma; print('ok')"); out != "ok" {
		t.Fatal(out)
	}
	if f.saved.Load() == 0 || f.lock.Model("$MODELS_DIR/odd_folder/b.bin").SHA256 == "" || f.lock.Model("$COMFY_HOME/custom_nodes/node-a/ckpt/b.bin").SHA256 == "" {
		t.Errorf("the digest of an unchecksummed model was not recorded in the lock (saves=%d)", f.saved.Load())
	}
	m, _ := ReadMarker(f.build, "v")
	if !m.Complete || len(m.PythonFreeze) < 3 {
		t.Errorf("marker = %+v", m)
	}

	// Second run: recognised from stat data; nothing fetched or exported.
	reqs := len(f.ms.Requests("/a.safetensors"))
	coreCalls := f.trees.count("https://github.com/comfyanonymous/ComfyUI")
	if res := f.realize(); !res.NoOp {
		t.Fatalf("second realize was not a no-op: %s", actions(res))
	}
	if len(f.ms.Requests("/a.safetensors")) != reqs || f.trees.count("https://github.com/comfyanonymous/ComfyUI") != coreCalls {
		t.Error("a no-op realize touched the network or git")
	}

	// Change one node's commit: only it is exported again, and Python reruns.
	f.nodes["node-b"].Commit("fix", map[string]string{"fix.py": ""})
	f.setSpec(f.specDoc(modelsJSON))
	res = f.realize()
	if got := actions(res); got != "core=kept custom_nodes=done models=kept python=kept extra_model_paths=kept" {
		t.Errorf("node-b (no requirements) bump: %s", got)
	}
	if f.trees.count("https://github.com/o/node-b") != 2 || f.trees.count("https://github.com/o/node-a") != 1 {
		t.Errorf("exports: a=%d b=%d", f.trees.count("https://github.com/o/node-a"), f.trees.count("https://github.com/o/node-b"))
	}
	f.nodes["node-a"].Commit("feat", map[string]string{"feat.py": ""})
	f.setSpec(f.specDoc(modelsJSON))
	bReqs := len(f.ms.Requests("/b.bin"))
	// node-a's fresh tree lacks the model placed inside it: the models step
	// links it again from the store, without a download.
	if got := actions(f.realize()); got != "core=kept custom_nodes=done models=kept python=done models=done extra_model_paths=kept" {
		t.Errorf("node-a (with requirements) bump: %s", got)
	}
	if len(f.ms.Requests("/b.bin")) != bReqs || !exists(filepath.Join(f.build, "custom_nodes/node-a/ckpt/b.bin")) {
		t.Error("the model inside node-a was downloaded again or not placed")
	}

	// Add a model: only it is downloaded.
	f.setSpec(f.specDoc(modelsJSON + fmt.Sprintf(`, {"source": "%s", "target_path": "$MODELS_DIR/vae/c.bin"}`, f.ms.Path("c.bin"))))
	before := len(f.ms.Requests("/a.safetensors")) + len(f.ms.Requests("/b.bin"))
	res = f.realize()
	if got := actions(res); got != "core=kept custom_nodes=kept models=done python=kept models=done extra_model_paths=kept" {
		t.Errorf("added model: %s", got)
	}
	if after := len(f.ms.Requests("/a.safetensors")) + len(f.ms.Requests("/b.bin")); after != before || len(f.ms.Requests("/c.bin")) != 1 {
		t.Errorf("adding c re-fetched others (%d -> %d) or not c (%d)", before, after, len(f.ms.Requests("/c.bin")))
	}
}

func TestRealizeRetriesOnlyTheFailedStep(t *testing.T) {
	f := newFixture(t)
	f.addModel("m.bin", 2000)
	f.ms.Faults("/m.bin", modeltest.Fault{Status: 500}, modeltest.Fault{Status: 500}) // MaxAttempts is 2
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "checkpoints/m.bin"}`, f.ms.Path("m.bin"))))
	_, err := Realize(context.Background(), f.config(), f.lock)
	var re *Error
	if !errors.As(err, &re) || re.Step != "models" {
		t.Fatalf("want a models step error, got %v", err)
	}
	if exists(filepath.Join(f.models, "checkpoints", "m.bin")) {
		t.Fatal("a failed download left a file at the final path")
	}
	if exists(f.build) {
		t.Fatal("a failed realize put a build in place")
	}
	// The failed realize's stage records what it did, for the next one.
	stages, _ := filepath.Glob(filepath.Join(StoreDir(f.build), stagePrefix+"*"))
	if len(stages) != 1 {
		t.Fatalf("stages after the failure: %v", stages)
	}
	m, _ := ReadMarker(stages[0], "v")
	if m.Complete || m.Core == "" || m.Python == "" {
		t.Fatalf("marker after failure = %+v", m)
	}
	// The model failed once (its two attempts), and the link step did
	// not download it a second time.
	if n := len(f.ms.Requests("/m.bin")); n != 2 {
		t.Errorf("the failing model was requested %d times, want 2 (one fetch of 2 attempts)", n)
	}
	res := f.realize()
	if got := actions(res); got != "core=kept custom_nodes=kept models=done python=kept models=done extra_model_paths=kept" {
		t.Errorf("rerun after failure: %s", got)
	}
	if n := len(f.ms.Requests("/m.bin")); n != 3 {
		t.Errorf("the model was requested %d times in all, want 3", n)
	}
}

func TestRealizeConcurrentSameBuild(t *testing.T) {
	f := newFixture(t)
	f.addModel("big.bin", 2_000_000)
	f.ms.Throttle("/big.bin", 8_000_000)
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "checkpoints/big.bin"}`, f.ms.Path("big.bin"))))
	var wg sync.WaitGroup
	results := make([]*Result, 3)
	errs := make([]error, 3)
	// Each realize has its own copy of the lock, read before the others
	// ran, as separate processes would.
	locks := make([]*lock.Lock, 3)
	for i := range results {
		locks[i] = cloneLock(t, f.lock)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Realize(context.Background(), f.config(), locks[i])
		}()
	}
	wg.Wait()
	noops := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("realize %d: %v", i, errs[i])
		}
		if results[i].NoOp {
			noops++
		}
	}
	if noops != 2 || len(f.ms.Requests("/big.bin")) != 1 || f.trees.count("https://github.com/comfyanonymous/ComfyUI") != 1 {
		t.Errorf("3 concurrent realizes: %d no-ops (want 2), %d downloads, %d core exports (want 1 each)",
			noops, len(f.ms.Requests("/big.bin")), f.trees.count("https://github.com/comfyanonymous/ComfyUI"))
	}
	// The ones that waited learned the digest the first one recorded:
	// every copy of the lock now matches the build.
	m, _ := ReadMarker(f.build, "v")
	for i, l := range locks {
		if l.Models[0].SHA256 == "" || LockDigest(l) != m.LockDigest {
			t.Errorf("lock %d does not match the build's marker (digest %q)", i, l.Models[0].SHA256)
		}
	}
}

func cloneLock(t *testing.T, l *lock.Lock) *lock.Lock {
	t.Helper()
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var c lock.Lock
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestRealizeRefusesAForeignDirectory: a non-empty directory without a
// build marker (an existing ComfyUI install) is left untouched.
func TestRealizeRefusesAForeignDirectory(t *testing.T) {
	f := newFixture(t)
	f.setSpec(f.specDoc(""))
	mine := filepath.Join(f.build, "models", "checkpoints", "mine.safetensors")
	os.MkdirAll(filepath.Dir(mine), 0o755)
	os.WriteFile(mine, []byte("precious"), 0o644)
	_, err := Realize(context.Background(), f.config(), f.lock)
	if err == nil || !strings.Contains(err.Error(), "was not made by the worker") {
		t.Fatalf("err = %v", err)
	}
	if b, err := os.ReadFile(mine); err != nil || string(b) != "precious" {
		t.Fatalf("the user's file was touched: %v", err)
	}
	if entries, _ := os.ReadDir(f.build); len(entries) != 1 {
		t.Errorf("realize wrote into the directory: %v", entries)
	}
	// An empty directory is fine.
	os.RemoveAll(f.build)
	os.MkdirAll(f.build, 0o755)
	f.realize()
}

func TestRealizeRelocatable(t *testing.T) {
	f := newFixture(t)
	f.addModel("m.bin", 1000)
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "loras/m.bin"}`, f.ms.Path("m.bin"))))
	f.realize()
	moved := filepath.Join(f.dir, "mounted-elsewhere")
	if err := os.Rename(f.volume, moved); err != nil {
		t.Fatal(err)
	}
	build := filepath.Join(moved, "builds", "comfy-v")
	if out := pythonIn(t, build, "import alpha, beta; print('ok')"); out != "ok" {
		t.Fatal(out)
	}
	data, err := os.ReadFile(filepath.Join(moved, "models", "loras", "m.bin"))
	if err != nil || len(data) != 1000 {
		t.Fatalf("model after the move: %v", err)
	}
	y, _ := os.ReadFile(filepath.Join(build, "extra_model_paths.yaml"))
	if strings.Contains(string(y), f.volume) {
		t.Errorf("extra_model_paths.yaml names the old mount:\n%s", y)
	}
	// Realize at the new mount point recognises the build.
	cfg := f.config()
	cfg.BuildDir, cfg.ModelsDir = build, filepath.Join(moved, "models")
	res, err := Realize(context.Background(), cfg, f.lock)
	if err != nil || !res.NoOp {
		t.Fatalf("realize after the move: noop=%v err=%v", res != nil && res.NoOp, err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	f.addModel("m.bin", 1000)
	// A source URL carrying credentials: the plan must not print them.
	src := strings.Replace(f.ms.Path("m.bin"), "http://", "http://user:PASSW0RD@", 1) + "?token=SEKRIT123"
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "loras/m.bin", "size": 1000}`, src)))
	p, err := DryRun(context.Background(), f.config(), f.lock)
	if err != nil {
		t.Fatal(err)
	}
	if exists(f.build) || len(f.ms.Requests("/m.bin")) != 0 {
		t.Fatal("dry run wrote the build or downloaded")
	}
	var sb strings.Builder
	p.WriteText(&sb)
	for _, want := range []string{"export   ComfyUI", "export   node-a", "download m.bin (1000 B)", "to download: 1000 B", "python:"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, sb.String())
		}
	}
	js, _ := json.Marshal(p)
	for _, secret := range []string{"PASSW0RD", "SEKRIT123"} {
		if strings.Contains(sb.String(), secret) || strings.Contains(string(js), secret) {
			t.Errorf("the plan shows the credential %s:\n%s", secret, sb.String())
		}
	}
	f.realize()
	p, err = DryRun(context.Background(), f.config(), f.lock)
	if err != nil || !p.Complete || pyItem(p).Action != "present" {
		t.Fatalf("plan after realize: complete=%v python %+v err=%v", p != nil && p.Complete, pyItem(p), err)
	}
	// A node with requirements moves: the plan says pip may run.
	f.nodes["node-a"].Commit("bump", map[string]string{"requirements.txt": "beta\ngamma\n"})
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "loras/m.bin", "size": 1000}`, src)))
	if p, err = DryRun(context.Background(), f.config(), f.lock); err != nil || pyItem(p).Action != "install" {
		t.Fatalf("plan after node-a moved: python %+v, %v", pyItem(p), err)
	}
	if res := f.realize(); !strings.Contains(actions(res), "python=done") {
		t.Errorf("realize after the plan: %s", actions(res))
	}
}

func pyItem(p *Plan) PlanItem {
	if p != nil {
		for _, it := range p.Items {
			if it.Step == "python" {
				return it
			}
		}
	}
	return PlanItem{}
}

// TestRealizeNoticesAGoneBaseInterpreter: a build whose venv points at a
// Python the machine no longer has (a new image) is not taken as complete;
// its venv is made again and works.
func TestRealizeNoticesAGoneBaseInterpreter(t *testing.T) {
	f := newFixture(t)
	f.setSpec(f.specDoc(""))
	f.realize()
	link := filepath.Join(f.build, ".venv", "bin", "python")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/python3.99", link); err != nil {
		t.Fatal(err)
	}
	res := f.realize()
	if res.NoOp || !strings.Contains(actions(res), "python=done") {
		t.Fatalf("realize after the base interpreter went away: %s", actions(res))
	}
	if out := pythonIn(t, f.build, "import alpha; print('ok')"); out != "ok" {
		t.Fatal(out)
	}
}

// TestSharedModelPathConflicts: ComfyUI searches the shared models
// directory first, so a different file at a model's shared path would be
// loaded instead of the model. Such a file (a hand-placed one, another
// version's model) is left alone and the realize fails saying so; a copy
// with the model's very bytes is adopted as a link.
func TestSharedModelPathConflicts(t *testing.T) {
	f := newFixture(t)
	f.addModel("m.bin", 1000)
	f.addModel("other.bin", 700)
	shared := filepath.Join(f.models, "loras", "m.bin")
	os.MkdirAll(filepath.Dir(shared), 0o755)
	os.WriteFile(shared, []byte("someone else's file"), 0o644)
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "loras/m.bin"}`, f.ms.Path("m.bin"))))
	_, err := Realize(context.Background(), f.config(), f.lock)
	var conflict *ModelConflictError
	if !errors.As(err, &conflict) || !strings.Contains(err.Error(), "give this model another target_path") {
		t.Fatalf("err = %v, want a model conflict", err)
	}
	if b, _ := os.ReadFile(shared); string(b) != "someone else's file" {
		t.Error("the hand-placed file was replaced")
	}

	// The same bytes placed by hand (or by the original tool): adopted.
	os.WriteFile(shared, f.modelData["m.bin"], 0o644)
	f.realize()
	if fi, _ := os.Stat(shared); fi == nil || fi.Sys().(*syscall.Stat_t).Nlink < 2 {
		t.Error("the identical copy was not replaced by a link to the cached model")
	}
	if res := f.realize(); !res.NoOp {
		t.Errorf("second realize: %s", actions(res))
	}

	// Version w wants other.bin at the same path: refused, v unharmed.
	cfgW := f.config()
	cfgW.BuildDir = filepath.Join(f.volume, "builds", "comfy-w")
	s2, _ := spec.Decode([]byte(strings.Replace(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "loras/m.bin"}`, f.ms.Path("other.bin"))), `"version_id": "v"`, `"version_id": "w"`, 1)), "")
	lw, _, err := lock.Resolve(context.Background(), s2, nil, nil, lock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Realize(context.Background(), cfgW, lw); !errors.As(err, &conflict) {
		t.Fatalf("w: err = %v, want a model conflict", err)
	}
	if b, _ := os.ReadFile(shared); !bytes.Equal(b, f.modelData["m.bin"]) {
		t.Error("w replaced v's model at the shared path")
	}
	if res := f.realize(); !res.NoOp {
		t.Errorf("v after w: %s", actions(res))
	}
}

// TestSharedBuildDirRecordsTheVersionItHolds: when one directory serves
// several versions (COMFY_HOME), its marker names the last one realized,
// which is what delete checks.
func TestSharedBuildDirRecordsTheVersionItHolds(t *testing.T) {
	f := newFixture(t)
	f.inPlace = true
	f.setSpec(f.specDoc(""))
	f.realize()
	s2, err := spec.Decode([]byte(strings.Replace(f.specDoc(""), `"version_id": "v"`, `"version_id": "w"`, 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	lw, _, err := lock.Resolve(context.Background(), s2, nil, nil, lock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Realize(context.Background(), f.config(), lw); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(f.build, MarkerFile))
	var m Marker
	if json.Unmarshal(data, &m) != nil || m.VersionID != "w" || !m.Complete {
		t.Errorf("marker after realizing w: %s", data)
	}
}
