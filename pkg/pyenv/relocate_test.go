package pyenv

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

// TestRelocatedBuild realizes a venv under one volume path, moves the whole
// volume (as /workspace on a Pod becomes /runpod-volume on serverless) and
// uses the build from the new path.
func TestRelocatedBuild(t *testing.T) {
	t.Parallel()
	in, _ := newTestInstaller(t, Config{WheelsDir: standardWheels(t)})
	ctx := context.Background()
	root := t.TempDir()
	oldVol, newVol := filepath.Join(root, "workspace"), filepath.Join(root, "runpod-volume")
	build := filepath.Join(oldVol, "builds", "comfy-x")
	node := writeFile(t, build, "custom_nodes/n/requirements.txt", "foo<2\n")
	plan := Plan{Nodes: []NodeRequirements{{"n", node}}, Packages: []string{"foo-cli"}}

	v, err := in.EnsureVenv(ctx, build)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Install(ctx, v.Dir, plan); err != nil {
		t.Fatal(err)
	}
	before, err := in.PlanDigest(plan, v)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.Rename(oldVol, newVol); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(newVol, "builds", "comfy-x")
	venv := filepath.Join(moved, ".venv")

	if out := py(t, filepath.Join(venv, "bin", "python"), "import foo, sys; print(foo.__version__, sys.prefix)"); out != "1.5 "+venv {
		t.Errorf("moved venv: %q", out)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = pyenvtest.IsolatedEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := run(filepath.Join(venv, "bin", "foo-cli")); out != "foo-cli in "+venv {
		t.Errorf("console script after the move: %q", out)
	}
	if out := run(filepath.Join(venv, "bin", "pip"), "--version"); !strings.Contains(out, venv) {
		t.Errorf("pip script after the move: %q", out)
	}
	if _, err := exec.LookPath("bash"); err == nil {
		out := run("bash", "-c", `source "$1" && echo "$VIRTUAL_ENV" && python -c 'import sys; print(sys.prefix)'`, "-", filepath.Join(venv, "bin", "activate"))
		if out != venv+"\n"+venv {
			t.Errorf("activate after the move: %q", out)
		}
	}

	again, err := in.EnsureVenv(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.ID != v.ID {
		t.Errorf("moved venv was recreated")
	}
	plan.Nodes[0].Path = filepath.Join(moved, "custom_nodes/n/requirements.txt")
	if after, _ := in.PlanDigest(plan, again); after != before {
		t.Errorf("plan digest changed with the mount point")
	}

	// Nothing in the venv may still name the old location, except what
	// Python never reads at run time. The activate scripts that cannot
	// find their own location are gone.
	for _, name := range []string{"activate.csh", "activate.fish", "Activate.ps1"} {
		if _, err := os.Lstat(filepath.Join(venv, "bin", name)); err == nil {
			t.Errorf("bin/%s is still there, naming the venv's first location", name)
		}
	}
	filepath.WalkDir(venv, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasSuffix(p, ".pyc") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if bytes.Contains(line, []byte(oldVol)) && !(d.Name() == "pyvenv.cfg" && bytes.HasPrefix(line, []byte("command ="))) {
				t.Errorf("%s still names the old path: %s", strings.TrimPrefix(p, venv), line)
			}
		}
		return nil
	})
}

// TestPatchActivateForms: every way venv has written the venv's path into
// activate (quoted, single-quoted, bare as shlex.quote leaves it, inside
// Python 3.13's cygpath call) becomes the path computed at run time.
func TestPatchActivateForms(t *testing.T) {
	const dir = "/vol/builds/comfy-x/.venv"
	self := `"$(cd -- "$(dirname -- "${BASH_SOURCE[0]:-$0}")/.." && pwd)"`
	for _, tc := range []struct{ in, want string }{
		{"VIRTUAL_ENV=\"" + dir + "\"\nexport VIRTUAL_ENV\n", "VIRTUAL_ENV=" + self + "\nexport VIRTUAL_ENV\n"},
		{"VIRTUAL_ENV='" + dir + "'\n", "VIRTUAL_ENV=" + self + "\n"},
		{"VIRTUAL_ENV=" + dir + "\nexport VIRTUAL_ENV\n", "VIRTUAL_ENV=" + self + "\nexport VIRTUAL_ENV\n"},
		{"    export VIRTUAL_ENV=$(cygpath " + dir + ")\nelse\n    export VIRTUAL_ENV=" + dir + "\nfi\n",
			"    export VIRTUAL_ENV=$(cygpath " + dir + ")\nelse\n    export VIRTUAL_ENV=" + self + "\nfi\n"},
		// A longer path that only starts with the venv's is not the venv.
		{"OTHER=" + dir + "-old\n", "OTHER=" + dir + "-old\n"},
	} {
		p := writeFile(t, t.TempDir(), "activate", tc.in)
		if err := patchActivate(p, dir); err != nil {
			t.Fatal(err)
		}
		if got := string(mustRead(t, p)); got != tc.want {
			t.Errorf("patched:\n%s\nwant:\n%s", got, tc.want)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
