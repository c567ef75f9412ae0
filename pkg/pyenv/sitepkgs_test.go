package pyenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

// TestSystemSitePackagesKeepBaseTorch plays a CUDA base image: an
// interpreter whose own site-packages holds torch 2.4.0, while the wheels
// offer torch 2.5.0 and a node asks for torch>=2.5.
func TestSystemSitePackagesKeepBaseTorch(t *testing.T) {
	t.Parallel()
	python := pyenvtest.Python(t)
	wheels := t.TempDir()
	baseTorch, err := pyenvtest.BuildWheel(t.TempDir(), "torch", "2.4.0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pyenvtest.Wheels(t, wheels,
		pyenvtest.Wheel{Name: "torch", Version: "2.5.0"},
		pyenvtest.Wheel{Name: "uses-torch", Version: "1.0", Requires: []string{"torch"}},
		pyenvtest.Wheel{Name: "needs-new-torch", Version: "1.0", Requires: []string{"torch>=2.5"}},
	)
	base, err := pyenvtest.NewBase(filepath.Join(t.TempDir(), "base"), python, baseTorch)
	if err != nil {
		t.Skipf("cannot build a base interpreter from %s: %v", python, err)
	}
	in, logs := newTestInstaller(t, Config{Python: base.Python, SystemSitePackages: true, WheelsDir: wheels})
	ctx := context.Background()

	src := t.TempDir()
	core := writeFile(t, src, "ComfyUI/requirements.txt", "torch\n")
	writeFile(t, src, "node/base.txt", "torch>=2.5 ; python_version >= '3'\n")
	node := writeFile(t, src, "node/requirements.txt", "-r base.txt\nuses-torch\n")
	plan := Plan{CoreRequirements: core, Nodes: []NodeRequirements{{"upgrader", node}}, Packages: []string{"torch==2.5.0"}}

	t.Run("describe", func(t *testing.T) {
		d, err := in.Describe(ctx, plan)
		if err != nil {
			t.Fatal(err)
		}
		s := d.String()
		for _, want := range []string{"kept from the base: torch==2.4.0", "<constraints: torch==2.4.0>", "<rewritten " + node + ">", "installer: pip", "--no-index"} {
			if !strings.Contains(s, want) {
				t.Errorf("description lacks %q:\n%s", want, s)
			}
		}
		if len(d.Neutralised) != 2 {
			t.Errorf("neutralised %v, want the node's torch>=2.5 and python_packages' torch==2.5.0", d.Neutralised)
		}
	})

	v, err := in.EnsureVenv(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(v.BasePins) != 1 || v.BasePins[0] != (Pin{"torch", "2.4.0"}) {
		t.Fatalf("base pins %v", v.BasePins)
	}

	t.Run("requirements cannot replace the base torch", func(t *testing.T) {
		if err := in.Install(ctx, v.Dir, plan); err != nil {
			t.Fatal(err)
		}
		out := py(t, v.Python, "import torch, uses_torch; print(torch.__version__, torch.__file__)")
		if want := "2.4.0 " + filepath.Join(base.SiteDir, "torch", "__init__.py"); out != want {
			t.Errorf("venv imports torch %q, want %q", out, want)
		}
		if m, _ := filepath.Glob(filepath.Join(v.Dir, "lib", "*", "site-packages", "torch*")); len(m) != 0 {
			t.Errorf("torch copied into the venv: %v", m)
		}
		if got := freezeMap(t, in, v.Dir); got["torch"] != "2.4.0" || got["uses-torch"] != "1.0" {
			t.Errorf("freeze %v", got)
		}
		if !strings.Contains(logs.String(), "torch>=2.5") {
			t.Errorf("the ignored torch>=2.5 is not logged:\n%s", logs)
		}
		// The node's tree is never written to.
		if data, _ := os.ReadFile(filepath.Join(src, "node/base.txt")); !strings.Contains(string(data), "torch>=2.5") {
			t.Errorf("node file changed: %q", data)
		}
	})

	t.Run("a dependency needing another torch fails clearly", func(t *testing.T) {
		err := in.Install(ctx, v.Dir, Plan{Packages: []string{"needs-new-torch"}})
		var ie *InstallError
		if !errors.As(err, &ie) || !ie.Conflict() {
			t.Fatalf("want a conflict, got %v", err)
		}
		if !strings.Contains(ie.Hint, "base interpreter's 2.4.0") || !strings.Contains(err.Error(), "needs-new-torch") {
			t.Errorf("unhelpful error: %v", err)
		}
	})
}
