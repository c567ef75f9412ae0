package pyenv

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/syncbuf"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// newTestInstaller returns an installer on the test's python, with pip,
// an environment free of the machine's pip configuration, and logs
// captured in the returned buffer.
func newTestInstaller(t *testing.T, cfg Config) (*Installer, *syncBuffer) {
	t.Helper()
	if cfg.Python == "" {
		cfg.Python = pyenvtest.Python(t)
	}
	if cfg.Env == nil {
		cfg.Env = pyenvtest.IsolatedEnv()
	}
	if cfg.LookPath == nil {
		cfg.UV = UVNever
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	logs := &syncBuffer{}
	cfg.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
	return New(cfg), logs
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// py runs code with the venv's python and returns its trimmed output.
func py(t *testing.T, python, code string) string {
	t.Helper()
	cmd := exec.Command(python, "-c", code)
	cmd.Env = pyenvtest.IsolatedEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -c %q: %v\n%s", python, code, err, out)
	}
	return strings.TrimSpace(string(out))
}

// freezeMap is Freeze as name -> version.
func freezeMap(t *testing.T, in *Installer, venvDir string) map[string]string {
	t.Helper()
	lines, err := in.Freeze(context.Background(), venvDir)
	if err != nil {
		t.Fatalf("freeze: %v", err)
	}
	m := map[string]string{}
	for _, l := range lines {
		name, ver, _ := strings.Cut(l, "==")
		m[normName(name)] = ver
	}
	return m
}

// standardWheels is the index most tests install from:
//
//	foo 1.0, 1.5, 2.0
//	baz 1.0 (foo<2), baz 2.0 (foo>=2): one resolution must pick baz 1.0
//	    next to foo<2; installing node by node would take baz 2.0 and
//	    upgrade foo behind the first node's back
//	bar 1.0
//	qux 1.0 (needs quux, which does not exist)
//	foo-cli 1.0 with a console script
func standardWheels(t *testing.T) string {
	dir := t.TempDir()
	return pyenvtest.Wheels(t, dir,
		pyenvtest.Wheel{Name: "foo", Version: "1.0"},
		pyenvtest.Wheel{Name: "foo", Version: "1.5"},
		pyenvtest.Wheel{Name: "foo", Version: "2.0"},
		pyenvtest.Wheel{Name: "baz", Version: "1.0", Requires: []string{"foo<2"}},
		pyenvtest.Wheel{Name: "baz", Version: "2.0", Requires: []string{"foo>=2"}},
		pyenvtest.Wheel{Name: "bar", Version: "1.0"},
		pyenvtest.Wheel{Name: "qux", Version: "1.0", Requires: []string{"quux"}},
		pyenvtest.Wheel{Name: "foo-cli", Version: "1.0",
			ConsoleScripts: map[string]string{"foo-cli": "foo_cli:main"},
			Files:          map[string]string{"foo_cli/__init__.py": "import sys\ndef main():\n    print('foo-cli in', sys.prefix)\n"}},
	)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// installed lists what the venv's python sees, name -> version, without
// a pip start-up (half a second each) where Freeze itself is not the
// subject.
func installed(t *testing.T, python string) map[string]string {
	t.Helper()
	out := py(t, python, `import json, importlib.metadata as m
print(json.dumps({d.metadata["Name"]: d.version for d in m.distributions()}))`)
	var raw map[string]string
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	got := map[string]string{}
	for n, v := range raw {
		got[normName(n)] = v
	}
	return got
}
