package spec

import (
	"fmt"
	"path"
	"strings"
)

// Root is the directory a model target is relative to.
type Root string

const (
	// ModelsRoot is the shared models directory (MODELS_DIR).
	ModelsRoot Root = "models"
	// ComfyRoot is the build's ComfyUI directory (COMFY_HOME).
	ComfyRoot Root = "comfy"
)

// Target is where a model file lives: a clean, slash-separated relative
// path that cannot escape its root.
type Target struct {
	Root Root
	Rel  string
}

// String renders the target the way specs write it.
func (t Target) String() string {
	if t.Root == ComfyRoot {
		return "$COMFY_HOME/" + t.Rel
	}
	return "$MODELS_DIR/" + t.Rel
}

// Folder is the first path element under the root ("loras" for
// $MODELS_DIR/loras/x.safetensors): the ComfyUI folder type.
func (t Target) Folder() string {
	if i := strings.IndexByte(t.Rel, '/'); i >= 0 {
		return t.Rel[:i]
	}
	return ""
}

var rootPrefixes = []struct {
	prefix string
	root   Root
}{
	{"$MODELS_DIR/", ModelsRoot},
	{"${MODELS_DIR}/", ModelsRoot},
	{"$COMFY_HOME/", ComfyRoot},
	{"${COMFY_HOME}/", ComfyRoot},
}

// ParseTarget normalises a model target as written in a spec: a path that
// starts with $MODELS_DIR/ or $COMFY_HOME/, or is relative to the models
// directory. Absolute paths, other variables and any ".." are refused so a
// spec can never write outside the build or the models directory.
func ParseTarget(s string) (Target, error) {
	if strings.TrimSpace(s) == "" {
		return Target{}, fmt.Errorf("empty target path")
	}
	if strings.ContainsAny(s, "\x00\n\r\\") {
		return Target{}, fmt.Errorf("target path %q contains a NUL, newline or backslash", s)
	}
	t := Target{Root: ModelsRoot}
	rest := s
	for _, p := range rootPrefixes {
		if strings.HasPrefix(s, p.prefix) {
			t.Root, rest = p.root, s[len(p.prefix):]
			break
		}
	}
	switch {
	case strings.HasPrefix(rest, "/"):
		return Target{}, fmt.Errorf("absolute target path %q: write it relative to the models directory, e.g. $MODELS_DIR/checkpoints/model.safetensors", s)
	case strings.Contains(rest, "$"):
		return Target{}, fmt.Errorf("target path %q uses a variable other than $MODELS_DIR or $COMFY_HOME", s)
	case strings.HasSuffix(rest, "/"):
		return Target{}, fmt.Errorf("target path %q names a directory: add the file name", s)
	}
	for _, el := range strings.Split(rest, "/") {
		if el == ".." {
			return Target{}, fmt.Errorf("target path %q escapes its directory with \"..\"", s)
		}
	}
	t.Rel = path.Clean(rest)
	if t.Rel == "." || t.Rel == "" {
		return Target{}, fmt.Errorf("target path %q names no file", s)
	}
	if t.Root == ComfyRoot && (t.Rel == ".venv" || strings.HasPrefix(t.Rel, ".venv/")) {
		return Target{}, fmt.Errorf("target path %q points into the build's Python environment", s)
	}
	return t, nil
}
