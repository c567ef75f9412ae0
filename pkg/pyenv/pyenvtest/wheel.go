// Package pyenvtest builds Python wheels and base interpreters for tests,
// without network access and without setuptools: a wheel is only a zip with
// a .dist-info folder, so it is written directly from Go. Packages whose
// tests need a real pip run (pyenv, realize) use it to fill a wheels
// directory that pip reads with --no-index --find-links.
package pyenvtest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Wheel describes a pure-Python wheel (py3-none-any).
type Wheel struct {
	Name    string
	Version string
	// Requires are Requires-Dist lines: "foo<2", "bar>=1; python_version>'3'".
	Requires []string
	// Files maps a path inside site-packages to its content. When empty the
	// wheel holds one module, <name>/__init__.py, whose __version__ is
	// Version, so a test can import the package and see which one it got.
	Files map[string]string
	// ConsoleScripts maps a script name to "module:function"; pip writes
	// each as an executable in the environment's bin directory.
	ConsoleScripts map[string]string
}

// BuildWheel writes the wheel for name and version into dir and returns its
// path. deps are Requires-Dist lines; files as in Wheel.Files.
func BuildWheel(dir, name, version string, deps []string, files map[string]string) (string, error) {
	return Wheel{Name: name, Version: version, Requires: deps, Files: files}.Build(dir)
}

var nameRun = regexp.MustCompile(`[-_.]+`)

// distName is the wheel file name form of a project name (PEP 427: runs of
// -_. become one underscore).
func distName(name string) string { return nameRun.ReplaceAllString(name, "_") }

// ModuleName is the import name of the default module Build writes.
func ModuleName(name string) string { return strings.ToLower(distName(name)) }

// FileName is the wheel's file name: <dist>-<version>-py3-none-any.whl.
func (w Wheel) FileName() string {
	return fmt.Sprintf("%s-%s-py3-none-any.whl", distName(w.Name), w.Version)
}

// Build writes the wheel into dir and returns its path.
func (w Wheel) Build(dir string) (string, error) {
	if w.Name == "" || w.Version == "" {
		return "", fmt.Errorf("wheel needs a name and a version")
	}
	files := map[string]string{}
	for p, c := range w.Files {
		files[p] = c
	}
	if len(files) == 0 {
		files[ModuleName(w.Name)+"/__init__.py"] = fmt.Sprintf("__version__ = %q\n", w.Version)
	}
	info := distName(w.Name) + "-" + w.Version + ".dist-info"

	var meta strings.Builder
	fmt.Fprintf(&meta, "Metadata-Version: 2.1\nName: %s\nVersion: %s\n", w.Name, w.Version)
	for _, r := range w.Requires {
		fmt.Fprintf(&meta, "Requires-Dist: %s\n", r)
	}
	files[info+"/METADATA"] = meta.String()
	files[info+"/WHEEL"] = "Wheel-Version: 1.0\nGenerator: pyenvtest\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	if len(w.ConsoleScripts) > 0 {
		var ep strings.Builder
		ep.WriteString("[console_scripts]\n")
		for _, k := range sortedKeys(w.ConsoleScripts) {
			fmt.Fprintf(&ep, "%s = %s\n", k, w.ConsoleScripts[k])
		}
		files[info+"/entry_points.txt"] = ep.String()
	}

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	// A fixed timestamp keeps the wheel's bytes, and so any digest of the
	// wheels directory, the same from run to run.
	stamp := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range sortedKeys(files) {
		if err := addFile(zw, p, []byte(files[p]), stamp); err != nil {
			return "", err
		}
		sum := sha256.Sum256([]byte(files[p]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[p]))
	}
	record.WriteString(info + "/RECORD,,\n")
	if err := addFile(zw, info+"/RECORD", []byte(record.String()), stamp); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, w.FileName())
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

func addFile(zw *zip.Writer, name string, data []byte, stamp time.Time) error {
	f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: stamp})
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Wheels builds every wheel into dir and fails the test on error. It
// returns dir so calls can be inlined.
func Wheels(t TB, dir string, wheels ...Wheel) string {
	t.Helper()
	for _, w := range wheels {
		if _, err := w.Build(dir); err != nil {
			t.Fatalf("build wheel %s %s: %v", w.Name, w.Version, err)
		}
	}
	return dir
}

// Unpack installs a pure wheel into siteDir the way an installer does for
// purelib wheels (extract, mark INSTALLER), without running pip. Base
// interpreters use it to get packages into their own site-packages.
func Unpack(wheelPath, siteDir string) error {
	zr, err := zip.OpenReader(wheelPath)
	if err != nil {
		return err
	}
	defer zr.Close()
	var info string
	for _, f := range zr.File {
		if strings.Contains(f.Name, "..") || filepath.IsAbs(f.Name) {
			return fmt.Errorf("%s: unsafe path %q", wheelPath, f.Name)
		}
		dst := filepath.Join(siteDir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b.Bytes(), 0o644); err != nil {
			return err
		}
		if d := strings.SplitN(f.Name, "/", 2)[0]; strings.HasSuffix(d, ".dist-info") {
			info = d
		}
	}
	if info == "" {
		return fmt.Errorf("%s: no .dist-info folder", wheelPath)
	}
	return os.WriteFile(filepath.Join(siteDir, info, "INSTALLER"), []byte("pyenvtest\n"), 0o644)
}
