package pyenvtest

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildWheel(t *testing.T) {
	dir := t.TempDir()
	p, err := BuildWheel(dir, "My.Pkg-name", "1.2", []string{"foo<2", "bar; python_version>'3'"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "My_Pkg_name-1.2-py3-none-any.whl" {
		t.Errorf("file name %s", p)
	}
	zr, err := zip.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = string(b)
	}
	info := "My_Pkg_name-1.2.dist-info/"
	if files["my_pkg_name/__init__.py"] != "__version__ = \"1.2\"\n" {
		t.Errorf("default module: %q", files["my_pkg_name/__init__.py"])
	}
	meta := files[info+"METADATA"]
	for _, want := range []string{"Name: My.Pkg-name\n", "Version: 1.2\n", "Requires-Dist: foo<2\n", "Requires-Dist: bar; python_version>'3'\n"} {
		if !strings.Contains(meta, want) {
			t.Errorf("METADATA lacks %q:\n%s", want, meta)
		}
	}
	// RECORD must list every other file with its real hash and size.
	for _, line := range strings.Split(strings.TrimSpace(files[info+"RECORD"]), "\n") {
		parts := strings.Split(line, ",")
		if parts[0] == info+"RECORD" {
			continue
		}
		sum := sha256.Sum256([]byte(files[parts[0]]))
		if parts[1] != "sha256="+base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("RECORD hash wrong for %s", parts[0])
		}
	}
	again, _ := os.ReadFile(p)
	p2, _ := BuildWheel(t.TempDir(), "My.Pkg-name", "1.2", []string{"foo<2", "bar; python_version>'3'"}, nil)
	if b2, _ := os.ReadFile(p2); string(b2) != string(again) {
		t.Error("wheel bytes differ between builds")
	}
}

func TestNewBaseSeesUnpackedWheels(t *testing.T) {
	python := Python(t)
	whl, err := Wheel{Name: "torch", Version: "2.4.0"}.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBase(filepath.Join(t.TempDir(), "base"), python, whl)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(b.Python, "-c", "import sys, torch, importlib.metadata as m; print(sys.prefix, torch.__version__, m.version('torch'))")
	cmd.Env = IsolatedEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != b.Prefix+" 2.4.0 2.4.0" {
		t.Errorf("base says %q", got)
	}
}

func TestIsolatedEnv(t *testing.T) {
	t.Setenv("PIP_FIND_LINKS", "/opt/wheels")
	t.Setenv("PYTHONPATH", "/x")
	env := strings.Join(IsolatedEnv(), "\n")
	if strings.Contains(env, "PIP_FIND_LINKS") || strings.Contains(env, "PYTHONPATH") || !strings.Contains(env, "PIP_CONFIG_FILE="+os.DevNull) {
		t.Errorf("env:\n%s", env)
	}
}
