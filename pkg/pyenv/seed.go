package pyenv

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// seedVenv puts the wheels ensurepip would install (pip, and setuptools
// before Python 3.12) into a venv made with --without-pip by unpacking
// them, as virtualenv's seeder does. ensurepip runs pip to install pip,
// byte-compiling it as it goes: 3.5–8 s here, against a tenth of a second
// to unpack. Any problem returns an error and the caller lets ensurepip
// do it the slow way.
func seedVenv(dir string, interp Interpreter) error {
	purelib, err := venvPurelib(dir, interp.Version)
	if err != nil {
		return err
	}
	for _, name := range []string{"setuptools", "pip"} {
		whl := interp.SeedWheels[name]
		if whl == "" {
			continue
		}
		if err := installWheel(whl, purelib, filepath.Join(dir, "bin"), interp.Version); err != nil {
			return fmt.Errorf("unpack %s: %w", filepath.Base(whl), err)
		}
	}
	return nil
}

// venvPurelib is the venv's site-packages for CPython's layout.
func venvPurelib(dir, version string) (string, error) {
	mm := majorMinor(version)
	p := filepath.Join(dir, "lib", "python"+mm, "site-packages")
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the venv has no %s (not CPython's layout)", p)
	}
	return p, nil
}

func majorMinor(version string) string {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return version
	}
	return parts[0] + "." + parts[1]
}

// installWheel unpacks a pure-Python wheel into purelib and writes its
// console scripts into bin. Only what pip's and setuptools' wheels hold is
// supported: a wheel with a .data directory, or with an entry that would
// land outside purelib, is refused.
func installWheel(whl, purelib, bin, pyVersion string) error {
	zr, err := zip.OpenReader(whl)
	if err != nil {
		return err
	}
	defer zr.Close()
	distInfo := ""
	for _, f := range zr.File {
		name := strings.TrimSuffix(f.Name, "/")
		if !filepath.IsLocal(name) || strings.Contains(f.Name, `\`) {
			return fmt.Errorf("entry %q would land outside site-packages", f.Name)
		}
		top, _, _ := strings.Cut(name, "/")
		switch {
		case strings.HasSuffix(top, ".data"):
			return fmt.Errorf("entry %q: wheels with a .data directory are not unpacked here", f.Name)
		case strings.HasSuffix(top, ".dist-info"):
			distInfo = top
		}
	}
	if distInfo == "" {
		return errors.New("no .dist-info directory")
	}
	// Each directory is made once: on a network volume every MkdirAll of
	// an existing path costs a lookup per path component.
	made := map[string]bool{}
	for _, f := range zr.File {
		if err := unpackEntry(f, purelib, made); err != nil {
			return err
		}
	}
	scripts, err := consoleScripts(filepath.Join(purelib, distInfo, "entry_points.txt"), pyVersion)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(purelib, bin)
	if err != nil {
		return err
	}
	// The venv's python by its absolute path: makeRelocatable turns these
	// shebangs into relative ones with the scripts venv wrote.
	python := filepath.Join(bin, "python")
	var record bytes.Buffer
	for _, s := range scripts {
		body := fmt.Sprintf("#!%s\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom %s import %s\nif __name__ == \"__main__\":\n    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n    sys.exit(%s())\n",
			python, s.module, strings.SplitN(s.attr, ".", 2)[0], s.attr)
		if err := os.WriteFile(filepath.Join(bin, s.name), []byte(body), 0o755); err != nil {
			return err
		}
		fmt.Fprintf(&record, "%s,,\n", path.Join(filepath.ToSlash(rel), s.name))
	}
	if err := os.WriteFile(filepath.Join(purelib, distInfo, "INSTALLER"), []byte("comfy-worker\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(&record, "%s/INSTALLER,,\n", distInfo)
	// RECORD lists what an uninstall removes (pip upgrading itself): the
	// wheel's own files, and the scripts and INSTALLER written here.
	rf, err := os.OpenFile(filepath.Join(purelib, distInfo, "RECORD"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := rf.Write(record.Bytes()); err != nil {
		rf.Close()
		return err
	}
	return rf.Close()
}

func unpackEntry(f *zip.File, root string, made map[string]bool) error {
	dst := filepath.Join(root, filepath.FromSlash(f.Name))
	dir := filepath.Dir(dst)
	if strings.HasSuffix(f.Name, "/") {
		dir = dst
	}
	if !made[dir] {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		made[dir] = true
	}
	if strings.HasSuffix(f.Name, "/") {
		return nil
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	mode := os.FileMode(0o644)
	if f.Mode()&0o111 != 0 {
		mode = 0o755
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

type script struct{ name, module, attr string }

var versionedPip = regexp.MustCompile(`^pip\d+\.\d+$`)

// consoleScripts reads the [console_scripts] of an entry_points.txt. pip
// names one script after the Python that built its wheel (pip3.12); like
// pip's own installer, that one is renamed for the venv's Python.
func consoleScripts(file, pyVersion string) ([]script, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []script
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[] ")
			continue
		}
		if section != "console_scripts" {
			continue
		}
		name, target, ok := strings.Cut(line, "=")
		module, attr, ok2 := strings.Cut(strings.TrimSpace(target), ":")
		name, module = strings.TrimSpace(name), strings.TrimSpace(module)
		attr, _, _ = strings.Cut(strings.TrimSpace(attr), " ") // drop "[extras]"
		if !ok || !ok2 || name == "" || module == "" || attr == "" || strings.ContainsAny(name, `/\`) {
			return nil, fmt.Errorf("%s: bad console script %q", file, line)
		}
		if versionedPip.MatchString(name) {
			name = "pip" + majorMinor(pyVersion)
		}
		out = append(out, script{name: name, module: module, attr: attr})
	}
	return out, sc.Err()
}
