package spec

import (
	"errors"
	"strings"
	"testing"
)

// base is a minimal valid spec; each invalid case edits one thing.
const base = `{"schema_version": 2, "version_id": "v", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "master"}, %s}`

func withTop(s string) string { return strings.Replace(base, "%s", s, 1) }

func withModel(m string) string { return withTop(`"models": [` + m + `]`) }

func withNode(n string) string { return withTop(`"custom_nodes": [` + n + `]`) }

const goodNode = `{"repo": "https://github.com/a/n1", "ref": "main"}`

func TestDecodeInvalid(t *testing.T) {
	hexA := strings.Repeat("a", 64)
	hexB := strings.Repeat("b", 64)
	cases := []struct {
		name, doc, path, msg string
	}{
		{"not json", `{"schema_version": 2,`, "", "invalid JSON"},
		{"trailing data", withTop(`"env": {}`) + "{}", "", "after the top-level"},
		{"top is a list", `[]`, "", "must be a JSON object"},
		{"unknown top key", withTop(`"custom_node": []`), "custom_node", `did you mean "custom_nodes"`},
		{"unknown comfy key", `{"schema_version": 2, "version_id": "v", "comfy": {"repo": "https://x.org/a/b", "branch": "m"}}`, "comfy.branch", "unknown key"},
		{"unknown node key", withNode(`{"repo": "https://github.com/a/b", "sha": "x"}`), "custom_nodes[0].sha", "unknown key"},
		{"unknown model key", withModel(`{"source": "hf://a/b/c", "target_path": "loras/c", "sha256": "x"}`), "models[0].sha256", "unknown key"},
		{"unknown options key", withTop(`"options": {"offline": true, "gpu": "a100"}`), "options.gpu", "unknown key"},
		{"duplicate key", withTop(`"env": {"A": "1", "A": "2"}`), "env.A", "duplicate key"},
		{"missing schema_version", `{"version_id": "v", "comfy": {"repo": "https://x.org/a/b"}}`, "schema_version", "required"},
		{"schema_version 1", `{"schema_version": 1, "version_id": "v", "comfy": {"repo": "https://x.org/a/b"}}`, "schema_version", "only 2"},
		{"schema_version string", `{"schema_version": "2", "version_id": "v", "comfy": {"repo": "https://x.org/a/b"}}`, "schema_version", "unsupported"},
		{"v1 spec", `{"version_id": "my-version", "lock": "lockfiles/x.lock.json", "target": "/workspace/x"}`, "", "v1 spec"},
		{"bad version_id", `{"schema_version": 2, "version_id": "../etc", "comfy": {"repo": "https://x.org/a/b"}}`, "version_id", "invalid version id"},
		{"version_id not a string", `{"schema_version": 2, "version_id": 7, "comfy": {"repo": "https://x.org/a/b"}}`, "version_id", "want a string"},
		{"id and version_id disagree", `{"schema_version": 2, "version_id": "a", "id": "b", "comfy": {"repo": "https://x.org/a/b"}}`, "id", "disagrees"},
		{"missing version_id", `{"schema_version": 2, "comfy": {"repo": "https://x.org/a/b"}}`, "version_id", "required"},
		{"missing comfy", `{"schema_version": 2, "version_id": "v"}`, "comfy", "required"},
		{"comfy not an object", `{"schema_version": 2, "version_id": "v", "comfy": "https://x.org/a/b"}`, "comfy", "want an object"},
		{"empty repo", `{"schema_version": 2, "version_id": "v", "comfy": {"repo": " "}}`, "comfy.repo", "required"},
		{"repo not a URL", withNode(`{"repo": "just words"}`), "custom_nodes[0].repo", "not a git URL"},
		{"bad ref", `{"schema_version": 2, "version_id": "v", "comfy": {"repo": "https://x.org/a/b", "ref": "a..b"}}`, "comfy.ref", "not a valid git ref"},
		{"commit is junk", withNode(`{"repo": "https://github.com/a/b", "commit": "not a sha!"}`), "custom_nodes[0].commit", "neither a commit SHA"},
		{"commit ref disagrees with ref", withNode(`{"repo": "https://github.com/a/b", "ref": "dev", "commit": "main"}`), "custom_nodes[0].commit", "keep one"},
		{"commit wrong type", withNode(`{"repo": "https://github.com/a/b", "commit": 123}`), "custom_nodes[0].commit", "want a string"},
		{"custom_nodes not a list", withTop(`"custom_nodes": {}`), "custom_nodes", "want a list"},
		{"node not an object", withNode(`"https://github.com/a/b"`), "custom_nodes[0]", "want an object"},
		{"duplicate node names", withNode(goodNode + `, {"repo": "https://github.com/other/n1"}`), "custom_nodes[1]", "duplicate node name"},
		{"duplicate node dirs", withNode(goodNode + `, {"repo": "https://github.com/a/x", "target_dir": "$COMFY_HOME/custom_nodes/n1"}`), "custom_nodes[1]", "custom_nodes/n1"},
		{"node name traversal", withNode(`{"repo": "https://github.com/a/b", "name": "../evil"}`), "custom_nodes[0].name", "invalid node name"},
		{"target_dir elsewhere", withNode(`{"repo": "https://github.com/a/b", "target_dir": "/tmp/b"}`), "custom_nodes[0].target_dir", "legacy target_dir"},
		{"install_requirements junk", withNode(`{"repo": "https://github.com/a/b", "install_requirements": "sometimes"}`), "custom_nodes[0].install_requirements", "want a boolean"},
		{"model without source", withModel(`{}`), "models[0].source", "required"},
		{"model source not a string", withModel(`{"source": 1}`), "models[0].source", "want a string"},
		{"model unknown scheme", withModel(`{"source": "s3://b/k", "target_path": "k"}`), "models[0].source", "unsupported source scheme"},
		{"target escapes with ..", withModel(`{"source": "hf://a/b/c", "target_path": "$MODELS_DIR/../../etc/x"}`), "models[0].target_path", "escapes"},
		{"absolute target", withModel(`{"source": "hf://a/b/c", "target_path": "/etc/cron.d/x"}`), "models[0].target_path", "absolute"},
		{"subdir escapes", withModel(`{"source": "hf://a/b/c", "name": "c", "target_subdir": "../x"}`), "models[0].name", "escapes"},
		{"path and target_path disagree", withModel(`{"source": "hf://a/b/c", "target_path": "a/c", "path": "b/c"}`), "models[0].path", "disagrees"},
		{"bad checksum hex", withModel(`{"source": "hf://a/b/c", "target_path": "loras/c", "checksum": "sha256:xyz"}`), "models[0].checksum", "malformed sha256"},
		{"short checksum", withModel(`{"source": "hf://a/b/c", "target_path": "loras/c", "checksum": "abc123"}`), "models[0].checksum", "64 hex"},
		{"md5 checksum", withModel(`{"source": "hf://a/b/c", "target_path": "loras/c", "checksum": "md5:d41d8cd98f00b204e9800998ecf8427e"}`), "models[0].checksum", "not supported"},
		{"unknown checksum algo", withModel(`{"source": "hf://a/b/c", "target_path": "loras/c", "checksum": "crc32:abcd"}`), "models[0].checksum", "unknown checksum algorithm"},
		{"conflicting checksums", withModel(`{"source": "hf://a/b/c", "target_path": "loras/c", "checksum": "` + hexA + `"}, {"source": "https://h/c", "target_path": "$MODELS_DIR/loras/c", "checksum": "sha256:` + hexB + `"}`), "models[1]", "different checksums"},
		{"negative size", withModel(`{"source": "hf://a/b/c", "target_path": "loras/c", "size": -1}`), "models[0].size", "non-negative"},
		{"model without target", withModel(`{"source": "hf://a/b/c.safetensors"}`), "models[0]", `"target_subdir": "checkpoints"`},
		{"target at top of models dir", withModel(`{"source": "hf://a/b/c", "target_path": "$MODELS_DIR/c.safetensors"}`), "models[0].target_path", "folder of its type"},
		{"relative target without folder", withModel(`{"source": "hf://a/b/c", "target_path": "c.safetensors"}`), "models[0].target_path", "never lists it"},
		{"source with empty port", withModel(`{"source": "http://host:/x.bin", "target_subdir": "loras"}`), "models[0].source", "empty port"},
		{"source port out of range", withModel(`{"source": "https://host:99999/x.bin", "target_subdir": "loras"}`), "models[0].source", "1 to 65535"},
		{"source without host", withModel(`{"source": "https://:8080/x.bin", "target_subdir": "loras"}`), "models[0].source", "no host"},
		{"repo with empty port", withNode(`{"repo": "http://host:/o/r"}`), "custom_nodes[0].repo", "empty port"},
		{"python_packages not strings", withTop(`"python_packages": ["a", 2]`), "python_packages[1]", "want a pip requirement"},
		{"python_packages a string", withTop(`"python_packages": "numpy"`), "python_packages", "want a list"},
		{"env value not a string", withTop(`"env": {"A": 1}`), "env.A", "want a string"},
		{"env bad name", withTop(`"env": {"A-B": "1"}`), "env.A-B", "invalid environment variable"},
		{"options.offline junk", withTop(`"options": {"offline": "maybe"}`), "options.offline", "want a boolean"},
		{"options.python empty", withTop(`"options": {"python": ""}`), "options.python", "interpreter"},
		{"skip_python with python_packages", withTop(`"options": {"skip_python": true}, "python_packages": ["onnx"]`), "options.skip_python", "remove python_packages"},
		{"skip_python junk", withTop(`"options": {"skip_python": "sometimes"}`), "options.skip_python", "want a boolean"},
		{"options.comfy_args not list", withTop(`"options": {"comfy_args": "--lowvram"}`), "options.comfy_args", "want a list"},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			s, err := Decode([]byte(tc.doc), "versions/v.json")
			if err == nil {
				t.Fatalf("decoded without error: %+v", s)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *spec.Error", err, err)
			}
			if se.File != "versions/v.json" || se.Path != tc.path || !strings.Contains(se.Msg, tc.msg) {
				t.Fatalf("got file=%q path=%q msg=%q\nwant path=%q msg containing %q", se.File, se.Path, se.Msg, tc.path, tc.msg)
			}
			if !IsInvalid(err) {
				t.Fatal("IsInvalid = false")
			}
			if !strings.HasPrefix(err.Error(), "versions/v.json: ") {
				t.Fatalf("message %q does not start with the file", err)
			}
		})
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
}

func TestPlaceholdersLoadWithWarnings(t *testing.T) {
	doc := `{"schema_version": 2, "version_id": "demo",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main", "commit": "<resolved-sha>"},
	  "custom_nodes": [{"repo": "https://github.com/city96/ComfyUI-GGUF", "name": "gguf", "commit": "<optional>"}],
	  "models": [{"source": "hf://...", "name": "unet", "target_subdir": "unet", "checksum": "sha256:..."}]}`
	s, err := Decode([]byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Comfy.Commit != "" || s.Comfy.Ref != "main" || s.CustomNodes[0].Commit != "" || s.Models[0].SHA256 != "" {
		t.Fatalf("placeholders not dropped: %+v %+v %+v", s.Comfy, s.CustomNodes[0], s.Models[0])
	}
	// The model's name has no extension, which ComfyUI's loaders need.
	if len(s.Warnings) != 5 {
		t.Fatalf("want 5 warnings (2 commits, source, checksum, no extension), got %v", s.Warnings)
	}
}

// TestModelWithoutExtensionWarns: a target ComfyUI would not list (a name
// taken from a civitai download URL) is loadable, with a warning saying
// what to add.
func TestModelWithoutExtensionWarns(t *testing.T) {
	for _, tc := range []struct {
		model string
		warn  bool
	}{
		{`{"source": "civitai://api/download/models/1996092?type=Model", "target_subdir": "loras"}`, true},
		{`{"source": "civitai://api/download/models/1996092", "name": "style.safetensors", "target_subdir": "loras"}`, false},
		{`{"source": "hf://org/repo/f.safetensors", "target_path": "$MODELS_DIR/loras/f.safetensors"}`, false},
	} {
		s, err := Decode([]byte(`{"schema_version": 2, "version_id": "demo", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "commit": "`+strings.Repeat("a", 40)+`"}, "models": [`+tc.model+`]}`), "")
		if err != nil {
			t.Fatal(err)
		}
		warned := false
		for _, w := range s.Warnings {
			if strings.Contains(w.Msg, "no file extension") {
				warned = true
			}
		}
		if warned != tc.warn {
			t.Errorf("%s: warned %v, want %v (%v)", tc.model, warned, tc.warn, s.Warnings)
		}
	}
}

// TestErrorsHideURLCredentials: a spec error quoting a URL never repeats
// a token or password written into it.
func TestErrorsHideURLCredentials(t *testing.T) {
	cases := []struct{ name, doc, secret string }{
		{"source query token", withModel(`{"source": "http://host:/x.bin?token=s3cr3t-tok", "target_subdir": "loras"}`), "s3cr3t-tok"},
		{"source user info", withModel(`{"source": "https://bob:pa55word@host:0/x.bin", "target_subdir": "loras"}`), "pa55word"},
		{"repo user info", withNode(`{"repo": "https://ghp_t0ken@host:/o/r"}`), "ghp_t0ken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.doc), "versions/v.json")
			if err == nil {
				t.Fatal("decoded without error")
			}
			if strings.Contains(err.Error(), tc.secret) || !strings.Contains(err.Error(), "REDACTED") {
				t.Fatalf("error %q shows the secret or no REDACTED mark", err)
			}
		})
	}
}

func TestSkipPythonOption(t *testing.T) {
	s, err := Decode([]byte(withTop(`"options": {"skip_python": "yes"}, "custom_nodes": [{"repo": "https://github.com/a/n", "install_requirements": true}]`)), "versions/v.json")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Options.SkipPython {
		t.Fatal("skip_python not read")
	}
	if len(s.Warnings) != 1 || s.Warnings[0].Path != "custom_nodes[0].install_requirements" || !strings.Contains(s.Warnings[0].Msg, "installs nothing") {
		t.Fatalf("warnings %v: want one saying the node's requirements are not installed", s.Warnings)
	}
}
