package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/models/modeltest"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

// TestModelMirrors: HF_ENDPOINT and CIVITAI_ENDPOINT send hf:// and
// civitai:// downloads to mirrors, each with its own service's token and
// never the other's.
func TestModelMirrors(t *testing.T) {
	pyenvtest.Python(t)
	const hfTok, civTok = "hf_MIRRORtoken1", "civMIRRORtoken2"
	e := newTestEnv(t)
	e.publish("comfyanonymous/ComfyUI").Commit("core", map[string]string{"main.py": "", "requirements.txt": "torch\n"})
	hf, civ := modeltest.NewServer(), modeltest.NewServer()
	t.Cleanup(hf.Close)
	t.Cleanup(civ.Close)
	hf.RequireToken(hfTok)
	civ.RequireToken(civTok)
	hf.Add("/hf-prefix/org/repo/resolve/main/a.safetensors", []byte("weights from the hf mirror"))
	civ.Add("/api/download/models/42", []byte("weights from the civitai mirror"))
	e.vars["HF_ENDPOINT"] = hf.URL + "/hf-prefix/"
	e.vars["CIVITAI_ENDPOINT"] = civ.URL
	e.vars["HF_TOKEN"], e.vars["CIVITAI_TOKEN"] = hfTok, civTok
	e.vars["MODELS_DIR"] = filepath.Join(e.dir, "models")
	// skip_python: the core's torch requirement is never installed.
	e.writeSpec("demo", `{"schema_version": 2, "version_id": "demo",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main"},
	  "models": [
	    {"source": "hf://org/repo/a.safetensors", "target_subdir": "loras"},
	    {"source": "civitai://models/7?modelVersionId=42", "target_path": "$MODELS_DIR/checkpoints/b.safetensors"}],
	  "options": {"skip_python": true}}`)
	e.mustRun("realize", "demo")
	for path, want := range map[string]string{"loras/a.safetensors": "weights from the hf mirror", "checkpoints/b.safetensors": "weights from the civitai mirror"} {
		got, err := os.ReadFile(filepath.Join(e.vars["MODELS_DIR"], path))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", path, got, err)
		}
	}
	for _, srv := range []struct {
		name string
		s    *modeltest.Server
		tok  string
	}{{"hf", hf, hfTok}, {"civitai", civ, civTok}} {
		reqs := srv.s.Requests("")
		if len(reqs) == 0 {
			t.Errorf("the %s mirror got no request", srv.name)
		}
		for _, r := range reqs {
			if r.Authorization != "Bearer "+srv.tok {
				t.Errorf("%s mirror: %s sent Authorization %q", srv.name, r.Path, r.Authorization)
			}
		}
	}
}

func TestModelEndpointsAreChecked(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"HF_ENDPOINT", "hf-mirror.local", "not a base URL"},
		{"HF_ENDPOINT", "https://host:/", "not a base URL"},
		{"CIVITAI_ENDPOINT", "ftp://mirror/", "not a base URL"},
		{"CIVITAI_ENDPOINT", "https://user:pw@mirror/", "not a base URL"},
	} {
		e := newTestEnv(t)
		e.vars[tc.name] = tc.value
		code, _, stderr := e.run("list")
		if code != exitUsage || !strings.Contains(stderr, tc.name) || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, ":pw@") {
			t.Errorf("%s=%q: exit %d, stderr %q", tc.name, tc.value, code, stderr)
		}
	}
	cfg, err := loadConfig(func(k string) string {
		return map[string]string{"HF_ENDPOINT": " https://hf-mirror.example.com/ ", "CIVITAI_ENDPOINT": ""}[k]
	})
	if err != nil || cfg.HFEndpoint != "https://hf-mirror.example.com" || cfg.CivitaiEndpoint != "" {
		t.Errorf("endpoints %+v, %v", cfg, err)
	}
}
