package snapshot

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m, leaktest.Options{}) }

// fixture is a build-like tree: code, an executable script, a venv-style
// absolute link, a link inside the tree, a model that stays on the volume
// (in models/) and a model linked across file systems (a relative link out
// of the tree).
type fixture struct {
	root, build string
	mtime       time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{root: root, build: filepath.Join(root, "builds", "comfy-v"), mtime: time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC)}
	files := map[string]string{
		"main.py":                                             "print('comfy')\n",
		"comfy/__init__.py":                                   "",
		"comfy/__pycache__/x.cpython.pyc":                     "\x00\x01pyc",
		"custom_nodes/acme/__init__.py":                       "NODE_CLASS_MAPPINGS = {}\n",
		".venv/pyvenv.cfg":                                    "home = /usr/bin\n",
		".venv/lib/site/alpha/__init__.py":                    "__version__ = '1.0'\n",
		"models/checkpoints/tiny.safetensors":                 strings.Repeat("weights", 1000),
		"extra_model_paths.yaml":                              "a:\n  base_path: '../../models'\n",
		strings.Repeat("long-directory-name/", 8) + "deep.py": "deep = True\n",
		"big.bin": strings.Repeat("0123456789abcdef", 1<<17), // 2 MiB
		"empty":   "",
	}
	for rel, body := range files {
		p := filepath.Join(f.build, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.WriteFile(filepath.Join(f.build, ".venv/bin-script"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(t, os.MkdirAll(filepath.Join(f.build, ".venv/bin"), 0o755))
	must(t, os.Symlink("/usr/bin/python3", filepath.Join(f.build, ".venv/bin/python")))
	must(t, os.Symlink("python", filepath.Join(f.build, ".venv/bin/python3")))
	must(t, os.Symlink("site", filepath.Join(f.build, ".venv/lib/site-link")))
	// A model placed across file systems: a relative link out of the build.
	must(t, os.MkdirAll(filepath.Join(root, "blobs"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "blobs", "abc"), []byte("blob"), 0o644))
	must(t, os.Symlink("../../../../blobs/abc", filepath.Join(f.build, "models/checkpoints/linked.safetensors")))
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// packOpts leaves models/ on the volume, as the version package does.
func packOpts(key string) PackOptions {
	return PackOptions{
		Meta: Meta{Key: key, Label: "v"},
		Link: func(rel string, d fs.DirEntry) bool { return strings.HasPrefix(rel, "models/") },
	}
}

// pack writes the fixture's snapshot to a file and returns its path.
func (f *fixture) pack(t *testing.T, key string, plain bool) string {
	t.Helper()
	path := filepath.Join(f.root, "snapshots", key+".snap")
	opts := packOpts(key)
	opts.Plain = plain
	if _, won, err := Publish(context.Background(), f.build, path, opts); err != nil || !won {
		t.Fatalf("Publish = %v, %v", won, err)
	}
	return path
}

// entryState is what a tree entry must look like after unpacking.
type entryState struct {
	mode  fs.FileMode
	data  string // content, or a link's target
	mtime int64  // seconds, regular files only
}

// tree lists a directory's entries.
func tree(t *testing.T, dir string) map[string]entryState {
	t.Helper()
	out := map[string]entryState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := entryState{mode: fi.Mode()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.data, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			e.data, e.mtime = string(b), fi.ModTime().Unix()
		default:
			e.mode = fs.ModeDir
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flip changes one byte of the file at off (from the end when negative).
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	if off < 0 {
		off += int64(len(data))
	}
	data[off] ^= 0xff
	must(t, os.WriteFile(path, data, 0o644))
}

func truncateTo(t *testing.T, path string, size int64) {
	t.Helper()
	must(t, os.Truncate(path, size))
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi.Size()
}

func sameBytes(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	must(t, err)
	y, err := os.ReadFile(b)
	must(t, err)
	return bytes.Equal(x, y)
}
