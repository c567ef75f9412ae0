package pyenvtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SkipTB is a TB that can also skip, for helpers that need a Python.
type SkipTB interface {
	TB
	Skipf(format string, args ...any)
}

// Python returns the interpreter tests should build venvs from: python3 on
// PATH, when it is 3.9 or newer and has the venv and ensurepip modules
// (Debian splits them into python3-venv). Otherwise the test is skipped
// with the reason.
func Python(t SkipTB) string {
	t.Helper()
	path, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 not on PATH: %v", err)
	}
	out, err := exec.Command(path, "-c",
		"import sys, venv, ensurepip; print(sys.version_info >= (3, 9))").CombinedOutput()
	if err != nil {
		t.Skipf("%s cannot make venvs (install python3-venv): %v: %s", path, err, out)
	}
	if strings.TrimSpace(string(out)) != "True" {
		t.Skipf("%s is older than Python 3.9", path)
	}
	return path
}

// Base is a Python installation of its own, made for a test: a copy of a
// real interpreter's binary with a private site-packages, so packages can be
// "preinstalled" in it the way a CUDA base image preinstalls torch. A venv
// made from Base.Python with --system-site-packages sees them.
type Base struct {
	Prefix string
	// Python is <Prefix>/bin/python3.
	Python string
	// SiteDir is the base's own site-packages (purelib).
	SiteDir string
}

// NewBase builds a base interpreter under dir from python (a path or a
// name on PATH) and unpacks each wheel into its site-packages. A venv's
// base interpreter cannot be another venv (venv always reaches through to
// the real installation), which is why this copies the binary instead.
func NewBase(dir, python string, wheels ...string) (*Base, error) {
	var probe struct {
		Executable string `json:"executable"`
		Stdlib     string `json:"stdlib"`
		LibDir     string `json:"libdir"`
		Major      int    `json:"major"`
		Minor      int    `json:"minor"`
	}
	out, err := exec.Command(python, "-c", `import json, os, sys, sysconfig
print(json.dumps({"executable": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
  "stdlib": sysconfig.get_path("stdlib"), "libdir": sysconfig.get_config_var("LIBDIR") or "",
  "major": sys.version_info[0], "minor": sys.version_info[1]}))`).Output()
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", python, err)
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		return nil, fmt.Errorf("probe %s: %w", python, err)
	}
	prefix, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ver := fmt.Sprintf("python%d.%d", probe.Major, probe.Minor)
	bin := filepath.Join(prefix, "bin")
	lib := filepath.Join(prefix, "lib", ver)
	for _, d := range []string{bin, lib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// A symlinked binary would be resolved back to the real prefix by
	// Python's start-up path search; a copy makes this directory the prefix.
	if err := copyFile(probe.Executable, filepath.Join(bin, ver), 0o755); err != nil {
		return nil, err
	}
	for _, alias := range []string{"python3", "python"} {
		if err := os.Symlink(ver, filepath.Join(bin, alias)); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(probe.Stdlib)
	if err != nil {
		return nil, fmt.Errorf("read stdlib: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "site-packages" || e.Name() == "dist-packages" {
			continue
		}
		if err := os.Symlink(filepath.Join(probe.Stdlib, e.Name()), filepath.Join(lib, e.Name())); err != nil {
			return nil, err
		}
	}
	// Interpreters linked against libpython with an $ORIGIN-relative
	// runpath look for it beside the copy.
	if probe.LibDir != "" {
		libs, _ := filepath.Glob(filepath.Join(probe.LibDir, "libpython*"))
		for _, l := range libs {
			if err := os.Symlink(l, filepath.Join(prefix, "lib", filepath.Base(l))); err != nil {
				return nil, err
			}
		}
	}
	b := &Base{Prefix: prefix, Python: filepath.Join(bin, "python3")}
	var stdout bytes.Buffer
	cmd := exec.Command(b.Python, "-s", "-c", `import sys, sysconfig
print(sys.prefix); print(sysconfig.get_path("purelib"))`)
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run copied interpreter: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || lines[0] != prefix {
		return nil, fmt.Errorf("copied interpreter does not treat %s as its prefix: %q", prefix, lines)
	}
	b.SiteDir = lines[1]
	if err := os.MkdirAll(b.SiteDir, 0o755); err != nil {
		return nil, err
	}
	for _, w := range wheels {
		if err := Unpack(w, b.SiteDir); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// IsolatedEnv is the worker's environment without the variables that
// change what pip, uv or Python do (PIP_*, UV_*, PYTHON*, VIRTUAL_ENV), and
// with pip's config files switched off, so a test sees only the indexes and
// wheels it sets up itself. Pass it as the installer's Env.
func IsolatedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "PIP_"), strings.HasPrefix(name, "UV_"),
			strings.HasPrefix(name, "PYTHON"), name == "VIRTUAL_ENV":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PIP_CONFIG_FILE="+os.DevNull, "PIP_DISABLE_PIP_VERSION_CHECK=1")
}
