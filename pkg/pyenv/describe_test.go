package pyenv

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	python := pyenvtest.Python(t)
	core := writeFile(t, t.TempDir(), "requirements.txt", "torch\n")
	plan := Plan{CoreRequirements: core, Packages: []string{"--index-url", "https://me:tok@idx/simple", "onnx"}}
	uv := func(string) (string, error) { return "/opt/bin/uv", nil }
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"pip offline with wheels", Config{UV: UVNever, Offline: true, WheelsDir: "/vol/wheels", PipCacheDir: "/vol/cache/pip"},
			[]string{"installer: pip (uv disabled)", "packages from: wheels in /vol/wheels only", "cache: /vol/cache/pip",
				"command: <build>/.venv/bin/python -m pip install", "--no-index --find-links /vol/wheels --cache-dir /vol/cache/pip -r " + core + " --index-url https://REDACTED@idx/simple onnx"}},
		{"uv when on PATH", Config{LookPath: uv},
			[]string{"installer: uv (uv on PATH)", "command: /opt/bin/uv pip install --python <build>/.venv/bin/python -r " + core, "packages from: the package index"}},
		{"pip for system site packages even with uv", Config{LookPath: uv, SystemSitePackages: true},
			[]string{"installer: pip (uv is on PATH but ignores system site packages", "system site packages true"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Python = python
			d, err := New(c.cfg).Describe(context.Background(), plan)
			if err != nil {
				t.Fatal(err)
			}
			s := d.String()
			if !strings.HasPrefix(s, "python: "+python) || !strings.Contains(s, "Python 3.") {
				t.Errorf("interpreter not stated:\n%s", s)
			}
			for _, w := range c.want {
				if !strings.Contains(s, w) {
					t.Errorf("lacks %q:\n%s", w, s)
				}
			}
			if strings.Contains(s, "tok") {
				t.Errorf("secret in description:\n%s", s)
			}
		})
	}
	d, err := New(Config{Python: python}).Describe(context.Background(), Plan{})
	if err != nil || !strings.Contains(d.String(), "nothing to install") {
		t.Errorf("empty plan: %v %v", d, err)
	}
}

func TestNotAVenv(t *testing.T) {
	t.Parallel()
	in := New(Config{UV: UVNever})
	dir := t.TempDir()
	if err := in.Install(context.Background(), dir, Plan{Packages: []string{"foo"}}); !errors.Is(err, ErrNoVenv) {
		t.Errorf("install: %v", err)
	}
	if _, err := in.Freeze(context.Background(), dir); !errors.Is(err, ErrNoVenv) {
		t.Errorf("freeze: %v", err)
	}
	if err := in.Install(context.Background(), dir, Plan{}); err != nil {
		t.Errorf("an empty plan needs no venv work: %v", err)
	}
}

// TestUV runs the uv path for real where uv is installed. Without it the
// pip path above is the tested one.
func TestUV(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("uv"); err != nil {
		t.Skip("uv is not on PATH; the uv install path is only exercised where uv is installed")
	}
	wheels := standardWheels(t)
	in, _ := newTestInstaller(t, Config{UV: UVAlways, LookPath: exec.LookPath, WheelsDir: wheels, PipCacheDir: t.TempDir()})
	ctx := context.Background()
	v, err := in.EnsureVenv(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	node := writeFile(t, t.TempDir(), "requirements.txt", "foo<2\n")
	if err := in.Install(ctx, v.Dir, Plan{Nodes: []NodeRequirements{{"a", node}}, Packages: []string{"baz"}}); err != nil {
		t.Fatal(err)
	}
	if got := freezeMap(t, in, v.Dir); got["foo"] != "1.5" || got["baz"] != "1.0" {
		t.Errorf("freeze %v", got)
	}
	var ie *InstallError
	if err := in.Install(ctx, v.Dir, Plan{Packages: []string{"foo<2", "foo>=2"}}); !errors.As(err, &ie) || ie.Tool != "uv" {
		t.Errorf("conflict through uv: %v", err)
	}
}
