package pyenv

import (
	"archive/zip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

// TestSeededVenv: a new venv gets pip by unpacking the interpreter's
// bundled wheels (fast), and that pip works, through `python -m pip` and
// through its scripts, also after the venv has moved.
func TestSeededVenv(t *testing.T) {
	in, logs := newTestInstaller(t, Config{})
	interp, err := in.Interpreter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if interp.SeedWheels["pip"] == "" {
		t.Skipf("%s bundles no pip wheel that could be found", interp.Executable)
	}
	build := filepath.Join(t.TempDir(), "comfy-a")
	start := time.Now()
	v, err := in.EnsureVenv(context.Background(), build)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("venv with pip in %v", time.Since(start))
	if strings.Contains(logs.String(), "ensurepip installs it instead") {
		t.Fatalf("fell back to ensurepip:\n%s", logs.String())
	}
	purelib, err := venvPurelib(v.Dir, interp.Version)
	if err != nil {
		t.Fatal(err)
	}
	installer, _ := filepath.Glob(filepath.Join(purelib, "pip-*.dist-info", "INSTALLER"))
	if len(installer) != 1 {
		t.Fatalf("pip was not unpacked into %s", purelib)
	}
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(build, moved); err != nil {
		t.Fatal(err)
	}
	venv := filepath.Join(moved, VenvDirName)
	for _, args := range [][]string{
		{filepath.Join(venv, "bin", "python"), "-m", "pip", "--version"},
		{filepath.Join(venv, "bin", "pip"), "--version"},
		{filepath.Join(venv, "bin", "pip"+majorMinor(interp.Version)), "--version"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = pyenvtest.IsolatedEnv()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), venv) {
			t.Errorf("%s: %v\n%s (want pip from %s)", strings.Join(args, " "), err, out, venv)
		}
	}
}

// TestSeedFallsBackToEnsurepip: a seed wheel that cannot be unpacked
// leaves the venv to ensurepip, and the venv still has a working pip.
func TestSeedFallsBackToEnsurepip(t *testing.T) {
	in, logs := newTestInstaller(t, Config{})
	interp, err := in.Interpreter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "pip-99.0-py3-none-any.whl")
	os.WriteFile(bad, []byte("not a zip"), 0o644)
	interp.SeedWheels = map[string]string{"pip": bad}
	dir := filepath.Join(t.TempDir(), VenvDirName)
	if _, err := in.create(context.Background(), dir, interp, "x"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "ensurepip installs it instead") {
		t.Errorf("no fallback logged:\n%s", logs.String())
	}
	py(t, filepath.Join(dir, "bin", "python"), "import pip")
}

func TestInstallWheelRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries map[string]string
		want    string
	}{
		{"path escape", map[string]string{"x-1.dist-info/RECORD": "", "../evil.py": "x"}, "outside site-packages"},
		{"absolute path", map[string]string{"x-1.dist-info/RECORD": "", "/tmp/evil.py": "x"}, "outside site-packages"},
		{"data directory", map[string]string{"x-1.dist-info/RECORD": "", "x-1.data/scripts/run": "x"}, ".data directory"},
		{"no metadata", map[string]string{"x/__init__.py": ""}, "no .dist-info"},
		{"bad console script", map[string]string{"x-1.dist-info/RECORD": "", "x-1.dist-info/entry_points.txt": "[console_scripts]\nrun = nomodule\n"}, "bad console script"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			whl := filepath.Join(dir, "x-1-py3-none-any.whl")
			f, _ := os.Create(whl)
			zw := zip.NewWriter(f)
			for name, body := range tc.entries {
				w, _ := zw.Create(name)
				w.Write([]byte(body))
			}
			zw.Close()
			f.Close()
			purelib, bin := filepath.Join(dir, "site"), filepath.Join(dir, "bin")
			os.MkdirAll(purelib, 0o755)
			os.MkdirAll(bin, 0o755)
			err := installWheel(whl, purelib, bin, "3.11.7")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "evil.py")); err == nil {
				t.Error("an entry was written outside site-packages")
			}
		})
	}
}

func TestConsoleScripts(t *testing.T) {
	p := writeFile(t, t.TempDir(), "entry_points.txt", `[console_scripts]
pip = pip._internal.cli.main:main
pip3 = pip._internal.cli.main:main
pip3.12 = pip._internal.cli.main:main

[other]
x = y:z
`)
	got, err := consoleScripts(p, "3.10.4")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.name+"="+s.module+":"+s.attr)
	}
	want := "pip=pip._internal.cli.main:main pip3=pip._internal.cli.main:main pip3.10=pip._internal.cli.main:main"
	if strings.Join(names, " ") != want {
		t.Errorf("got %v, want %s", names, want)
	}
}
