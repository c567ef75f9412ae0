package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

// TestSpecSecretsStayInTheSpec: a token written into a model source and a
// password in a pip index URL are used for the download, but never shown
// by validate (text or --json), realize --dry-run, the logs, or stored in
// the shared lock file.
func TestSpecSecretsStayInTheSpec(t *testing.T) {
	pyenvtest.Python(t)
	const tok, pass = "s3cretQUERYtok", "s3cretINDEXpass"
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != tok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("private weights"))
	}))
	t.Cleanup(model.Close)
	e := newTestEnv(t)
	e.vars["COMFY_LOG_LEVEL"] = "debug"
	e.vars["MODELS_DIR"] = filepath.Join(e.dir, "models")
	e.publish("comfyanonymous/ComfyUI").Commit("core", map[string]string{"main.py": ""})
	e.writeSpec("demo", `{"schema_version": 2, "version_id": "demo",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main"},
	  "models": [{"source": "`+model.URL+`/s4.bin?token=`+tok+`", "target_subdir": "loras"}],
	  "options": {"skip_python": true}}`)
	check := func(what, text string) {
		t.Helper()
		for _, s := range []string{tok, pass} {
			if strings.Contains(text, s) {
				t.Errorf("%s shows %q:\n%s", what, s, text)
			}
		}
	}
	for _, args := range [][]string{{"validate", "demo"}, {"validate", "demo", "--json"}, {"realize", "demo", "--dry-run"}, {"realize", "demo"}} {
		code, out, errs := e.run(args...)
		if code != 0 {
			t.Fatalf("worker %v: exit %d\n%s\n%s", args, code, out, errs)
		}
		check(strings.Join(args, " ")+" stdout", out)
		check(strings.Join(args, " ")+" logs", errs)
		if len(args) == 3 && args[2] == "--json" && !strings.Contains(out, "token=REDACTED") {
			t.Errorf("%v does not show which part was redacted:\n%s", args, out)
		}
	}
	got, err := os.ReadFile(filepath.Join(e.vars["MODELS_DIR"], "loras", "s4.bin"))
	if string(got) != "private weights" {
		t.Fatalf("model not downloaded with the spec's token: %q %v", got, err)
	}
	locks, _ := filepath.Glob(filepath.Join(e.vars["COMFY_CACHE_ROOT"], "resolved", "*.lock.json"))
	if len(locks) != 1 {
		t.Fatalf("locks: %v", locks)
	}
	lockFile, _ := os.ReadFile(locks[0])
	check("the lock file", string(lockFile))

	// A private index's password in python_packages: validate shows the
	// package list redacted.
	e.writeSpec("pkgs", `{"schema_version": 2, "version_id": "pkgs",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main"},
	  "python_packages": ["--extra-index-url=https://me:`+pass+`@pypi.example.org/simple", "onnx"]}`)
	code, out, errs := e.run("validate", "pkgs", "--json")
	if code != 0 {
		t.Fatalf("validate pkgs: exit %d\n%s", code, errs)
	}
	check("validate --json of python_packages", out+errs)
	lockFile, _ = os.ReadFile(filepath.Join(e.vars["COMFY_CACHE_ROOT"], "resolved", "pkgs.lock.json"))
	check("the lock of python_packages", string(lockFile))
}
