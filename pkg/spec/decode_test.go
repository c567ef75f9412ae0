package spec

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeVideoSpec(t *testing.T) {
	s, err := LoadFile("testdata/wan-video.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "wan-video" {
		t.Errorf("ID = %q, want the file name", s.ID)
	}
	if len(s.CustomNodes) != 7 || len(s.Models) != 16 {
		t.Fatalf("got %d nodes and %d models, want 7 and 16", len(s.CustomNodes), len(s.Models))
	}
	if !s.Comfy.Pinned() || s.Comfy.Ref != "master" {
		t.Errorf("comfy = %+v: want the commit pinned and the ref kept", s.Comfy)
	}
	byName := map[string]Node{}
	for _, n := range s.CustomNodes {
		byName[n.Name] = n
	}
	for _, tc := range []struct{ name, ref, commit, dir string }{
		{"ComfyUI-Frame-Interpolation", "main", "", "ComfyUI-Frame-Interpolation"},
		{"rgthree", "master", "", "rgthree-comfy"},
		{"ComfyUI-Impact-Pack", "Main", "", "ComfyUI-Impact-Pack"},
		{"wan-wrapper", "main", "0123456789abcdef0123456789abcdef01234567", "wan-wrapper"},
		{"ComfyUI-GGUF", "v1.0", "", "ComfyUI-GGUF"},
	} {
		n, ok := byName[tc.name]
		if !ok || n.Ref != tc.ref || n.Commit != tc.commit || n.Dir != tc.dir {
			t.Errorf("node %s = %+v, want ref %q commit %q dir %q", tc.name, n, tc.ref, tc.commit, tc.dir)
		}
	}
	if s.NodeInstallsRequirements(byName["ComfyUI-Impact-Pack"]) || !s.NodeInstallsRequirements(byName["rgthree"]) {
		t.Error("install_requirements: want false for Impact-Pack and the default (true) elsewhere")
	}
	dup := s.Models[0]
	if len(dup.Sources) != 2 || dup.Target.String() != "$MODELS_DIR/diffusion_models/t2v_high.safetensors" {
		t.Errorf("duplicate target not merged into alternatives: %+v", dup)
	}
	targets := map[string]Model{}
	for _, m := range s.Models {
		targets[m.Name] = m
	}
	if got := targets["clip"].Target.String(); got != "$MODELS_DIR/clip/clip" {
		t.Errorf("target_subdir + name: got %s", got)
	}
	if got := targets["rife"].Target; got.Root != ComfyRoot || got.Rel != "custom_nodes/ComfyUI-Frame-Interpolation/ckpts/rife/rife47.pth" {
		t.Errorf("$COMFY_HOME target: got %+v", got)
	}
	if got := targets["lora-b"]; got.SHA256 != strings.Repeat("cd", 32) || got.Target.Rel != "loras/lora_b.safetensors" {
		t.Errorf("bare hex checksum / relative target: got %+v", got)
	}
	if got := targets["lora-c"]; got.Size != 1<<20 || got.Target.Rel != "loras/lora_c.safetensors" {
		t.Errorf("path alias / size: got %+v", got)
	}
	if !reflect.DeepEqual(s.PythonPackages, []string{"--force-reinstall", "Pillow", "onnx==1.16.0"}) {
		t.Errorf("python_packages = %q", s.PythonPackages)
	}
	if s.Env["EMPTY"] != "" || s.Env["COMFY_PYTHON"] != "python3.11" || !s.Options.SystemSitePackages || s.Options.Offline {
		t.Errorf("env/options = %v %+v", s.Env, s.Options)
	}
	var warned []string
	for _, w := range s.Warnings {
		warned = append(warned, w.String())
	}
	all := strings.Join(warned, "\n")
	for _, want := range []string{`version_id: version id "wan-video-old-name" differs`, `custom_nodes[3].commit: "main" is a branch or tag name`,
		`custom_nodes[5].commit: "Main"`, `models[1]: target $MODELS_DIR/diffusion_models/t2v_high.safetensors is listed again`} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q; got:\n%s", want, all)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	s, err := LoadFile("testdata/wan-video.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "wan-video.json")
	os.WriteFile(p, b, 0o644)
	s2, err := LoadFile(p)
	if err != nil {
		t.Fatalf("re-decoding our own output: %v\n%s", err, b)
	}
	if s.Digest() != s2.Digest() {
		t.Errorf("digest changed across a round trip:\n%s", b)
	}
	s2.Models[0].Sources = s2.Models[0].Sources[:1]
	if s.Digest() == s2.Digest() {
		t.Error("digest did not change when a source was removed")
	}
}

func TestDigestIgnoresFormatting(t *testing.T) {
	a := `{"schema_version": 2, "version_id": "x", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "master"}}`
	b := "{\n\"comfy\":{\"ref\":\"master\",\"repo\":\"https://github.com/comfyanonymous/ComfyUI\"},\n \"version_id\":\"x\",\"schema_version\":2.0, \"models\": [], \"env\": {}}"
	sa, err := Decode([]byte(a), "")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Decode([]byte(b), "")
	if err != nil {
		t.Fatal(err)
	}
	if sa.Digest() != sb.Digest() {
		t.Error("equivalent specs have different digests")
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"$MODELS_DIR/loras/x.safetensors", "$MODELS_DIR/loras/x.safetensors", ""},
		{"${MODELS_DIR}/vae/./v.pth", "$MODELS_DIR/vae/v.pth", ""},
		{"checkpoints//m.ckpt", "$MODELS_DIR/checkpoints/m.ckpt", ""},
		{"$COMFY_HOME/custom_nodes/n/ckpt.pth", "$COMFY_HOME/custom_nodes/n/ckpt.pth", ""},
		{"x.safetensors", "$MODELS_DIR/x.safetensors", ""},
		{"$MODELS_DIR/../etc/passwd", "", "escapes"},
		{"loras/../../x", "", "escapes"},
		{"/etc/passwd", "", "absolute"},
		{"$MODELS_DIR//etc/x", "", "absolute"},
		{"$HOME/x", "", "variable"},
		{"loras/", "", "directory"},
		{"$COMFY_HOME/.venv/bin/python", "", "Python environment"},
		{"", "", "empty"},
	} {
		got, err := ParseTarget(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTarget(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRepoRef(t *testing.T) {
	for _, tc := range []struct{ in, url, ref string }{
		{"https://github.com/a/b", "https://github.com/a/b", ""},
		{"https://github.com/a/b@v1.2", "https://github.com/a/b", "v1.2"},
		{"https://user@host.com/a/b", "https://user@host.com/a/b", ""},
		{"https://user@host.com/a/b@dev", "https://user@host.com/a/b", "dev"},
		{"git@github.com:a/b.git", "git@github.com:a/b.git", ""},
		{"git@github.com:a/b.git@main", "git@github.com:a/b.git", "main"},
	} {
		u, r := ParseRepoRef(tc.in)
		if u != tc.url || r != tc.ref {
			t.Errorf("ParseRepoRef(%q) = %q, %q; want %q, %q", tc.in, u, r, tc.url, tc.ref)
		}
	}
}

func TestClone(t *testing.T) {
	src := []byte(`{"schema_version": 2, "id": "old", "comfy": {"repo": "https://g/c", "commit": "main"},
	  "custom_nodes": [{"repo": "https://g/n", "install_requirements": true, "target_dir": "$COMFY_HOME/custom_nodes/nn"}], "env": {"A": null}}`)
	out, err := Clone(src, "old.json", "new-id")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Decode(out, "dir/new-id.json")
	if err != nil {
		t.Fatalf("clone output invalid: %v\n%s", err, out)
	}
	for _, w := range s.Warnings {
		if strings.Contains(w.Msg, "differs from the file name") {
			t.Errorf("clone left a mismatching id: %s", out)
		}
	}
	if !strings.Contains(string(out), `"version_id": "new-id"`) || strings.Contains(string(out), `"id"`) ||
		!strings.Contains(string(out), `"target_dir": "$COMFY_HOME/custom_nodes/nn"`) || !strings.Contains(string(out), `"A": null`) {
		t.Errorf("clone did not keep the author's content:\n%s", out)
	}
	if _, err := Clone([]byte(`{"schema_version": 2}`), "x.json", "y"); !IsInvalid(err) {
		t.Errorf("cloning an invalid spec: %v", err)
	}
	if _, err := Clone(src, "old.json", "../x"); !IsInvalid(err) {
		t.Errorf("bad new id: %v", err)
	}
}
