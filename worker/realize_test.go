package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/pkg/models/modeltest"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
	"github.com/runpod-comfy/worker/pkg/realize"
)

// versionFixture publishes a ComfyUI-like core and two nodes over smart
// HTTP, builds offline wheels for their requirements and serves a model,
// then writes a spec following them by branch.
func versionFixture(t testing.TB, e *testEnv) (modelSHA string, ms *modeltest.Server) {
	t.Helper()
	pyenvtest.Python(t)
	core := e.publish("comfyanonymous/ComfyUI")
	core.Commit("core", map[string]string{
		"main.py":          "import os, sys\nexe = os.environ.get('FAKE_COMFY_BIN')\nif exe:\n    os.execv(exe, [exe] + sys.argv)\nprint('no fake')\n",
		"requirements.txt": "alpha\n", "comfy/cli_args.py": "# --database-url\n",
	})
	node := e.publish("acme/ComfyUI-Acme")
	node.Commit("node", map[string]string{"__init__.py": "NODE_CLASS_MAPPINGS = {}\n", "requirements.txt": "beta\n"})
	wheels := filepath.Join(e.dir, "wheels")
	os.MkdirAll(wheels, 0o755)
	for _, w := range []string{"alpha", "beta"} {
		if _, err := pyenvtest.BuildWheel(wheels, w, "1.0", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	ms = modeltest.NewServer()
	t.Cleanup(ms.Close)
	data := []byte(strings.Repeat("model bytes ", 5000))
	ms.Add("/org/repo/resolve/main/tiny.safetensors", data)
	e.vars["COMFY_WHEELS_DIR"] = wheels
	e.vars["MODELS_DIR"] = filepath.Join(e.dir, "models")
	e.writeSpec("demo", fmt.Sprintf(`{"schema_version": 2, "version_id": "demo",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main"},
	  "custom_nodes": [{"repo": "https://github.com/acme/ComfyUI-Acme", "ref": "main"}],
	  "models": [{"source": "%s", "target_path": "$MODELS_DIR/checkpoints/tiny.safetensors"}],
	  "options": {"comfy_args": ["--preview-method", "none"]}}`, ms.Path("/org/repo/resolve/main/tiny.safetensors")))
	return "", ms
}

func TestRealizeCommand(t *testing.T) {
	e := newTestEnv(t)
	_, ms := versionFixture(t, e)
	out := e.mustRun("realize", "demo", "--dry-run")
	if !strings.Contains(out, "[DRY-RUN]") || !strings.Contains(out, "download tiny.safetensors") {
		t.Fatalf("dry run:\n%s", out)
	}
	build := filepath.Join(e.vars["COMFY_BUILDS_ROOT"], "comfy-demo")
	// Nothing written: no build, no lock, no cache folders.
	for _, p := range []string{build, e.vars["COMFY_CACHE_ROOT"]} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("--dry-run created %s", p)
		}
	}
	if _, err := os.Stat(build); !os.IsNotExist(err) {
		t.Fatal("--dry-run created the build")
	}
	out = e.mustRun("realize", "demo")
	if !strings.Contains(out, "[OK] demo realized") {
		t.Fatalf("realize: %s", out)
	}
	for _, p := range []string{"main.py", "custom_nodes/ComfyUI-Acme/__init__.py", ".venv/bin/python", "extra_model_paths.yaml", realize.MarkerFile} {
		if _, err := os.Stat(filepath.Join(build, p)); err != nil {
			t.Errorf("build lacks %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(e.vars["MODELS_DIR"], "checkpoints", "tiny.safetensors")); err != nil {
		t.Error("model not placed")
	}
	// The lock learned the model's digest (trust on first use).
	var l struct {
		Models []struct {
			SHA256 string `json:"sha256"`
		} `json:"models"`
	}
	data, _ := os.ReadFile(filepath.Join(e.vars["COMFY_CACHE_ROOT"], "resolved", "demo.lock.json"))
	json.Unmarshal(data, &l)
	if len(l.Models) != 1 || len(l.Models[0].SHA256) != 64 {
		t.Errorf("lock models = %+v", l.Models)
	}
	gitBefore, modelBefore := e.srv.Requests(), len(ms.Requests("/org/repo/resolve/main/tiny.safetensors"))
	out = e.mustRun("realize", "demo")
	if !strings.Contains(out, "already complete") || e.srv.Requests() != gitBefore || len(ms.Requests("/org/repo/resolve/main/tiny.safetensors")) != modelBefore {
		t.Errorf("second realize was not a silent no-op:\n%s", out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("realize", "demo", "--json")), &res); err != nil {
		t.Fatal(err)
	}
	current, _ := filepath.EvalSymlinks(build)
	if _, ok := res["steps"]; res["build_dir"] != current || res["no_op"] != true || !ok {
		t.Errorf("realize --json = %v; want snake_case keys build_dir, no_op, steps", res)
	}
	out = e.mustRun("list")
	if !strings.Contains(out, "demo") || !strings.Contains(out, "complete") {
		t.Errorf("list after realize:\n%s", out)
	}
}

// TestPrepareForwardsDownloadProgress: a job that realizes its version
// hears about the model downloads (what it forwards to RunPod as progress),
// not only the git and Python steps.
func TestPrepareForwardsDownloadProgress(t *testing.T) {
	e := newTestEnv(t)
	versionFixture(t, e)
	cfg, err := loadConfig(e.getenv)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: e.getenv, cfg: cfg, log: zerolog.Nop()}
	var mu sync.Mutex
	tasks := map[string]bool{}
	_, err = a.manager(nil).Prepare(context.Background(), "demo", func(ev progress.Event) {
		mu.Lock()
		tasks[ev.Task] = true
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !tasks["download"] {
		t.Errorf("progress tasks seen: %v; want model download events", tasks)
	}
}
