package models

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func makeBlob(t *testing.T, root string, data []byte) Blob {
	t.Helper()
	digest := sha256hex(data)
	p := filepath.Join(root, "models", "sha256", digest)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o444); err != nil {
		t.Fatal(err)
	}
	return Blob{Path: p, SHA256: digest, Size: int64(len(data))}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestPlaceHardlink(t *testing.T) {
	root := t.TempDir()
	blob := makeBlob(t, root, []byte("model bytes"))
	target := filepath.Join(root, "models-dir", "loras", "x.safetensors")

	tests := []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"missing target", func(t *testing.T) {}},
		{"already placed", func(t *testing.T) {}},
		{"other file in the way", func(t *testing.T) {
			os.Remove(target)
			os.WriteFile(target, []byte("stale"), 0o644)
		}},
		{"absolute symlink to the blob", func(t *testing.T) {
			os.Remove(target)
			if err := os.Symlink(blob.Path, target); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", func(t *testing.T) {
			os.Remove(target)
			os.Symlink("/nonexistent/blob", target)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			if err := Place(blob, target); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(target)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || inode(t, target) != inode(t, blob.Path) {
				t.Fatalf("target is not a hardlink of the blob (mode %v)", fi.Mode())
			}
			if names := dirNames(t, filepath.Dir(target)); len(names) != 1 {
				t.Errorf("temp files left next to the target: %v", names)
			}
		})
	}

	if err := os.MkdirAll(filepath.Join(root, "models-dir", "dir-target"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Place(blob, filepath.Join(root, "models-dir", "dir-target")); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("placing over a directory: %v", err)
	}
}

// Without hardlinks Place makes a relative symlink, and the build keeps
// working after the volume is mounted at another path.
func TestPlaceRelativeSymlinkIsRelocatable(t *testing.T) {
	hardlink = func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EXDEV} }
	t.Cleanup(func() { hardlink = os.Link })

	vol := filepath.Join(t.TempDir(), "runpod-volume")
	data := []byte("relocatable")
	blob := makeBlob(t, filepath.Join(vol, "cache"), data)
	target := filepath.Join(vol, "models", "checkpoints", "m.safetensors")
	if err := Place(blob, target); err != nil {
		t.Fatal(err)
	}
	dest, err := os.Readlink(target)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.IsAbs(dest) {
		t.Fatalf("absolute symlink %q", dest)
	}
	// Placing again is a no-op: same link, same inode.
	ino := inode(t, target)
	if err := Place(blob, target); err != nil || inode(t, target) != ino {
		t.Errorf("re-place changed the link (err %v)", err)
	}

	moved := filepath.Join(filepath.Dir(vol), "workspace")
	if err := os.Rename(vol, moved); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(moved, "models", "checkpoints", "m.safetensors"))
	if err != nil || string(got) != string(data) {
		t.Fatalf("after moving the volume: %q, %v", got, err)
	}
}

func TestPlaceAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "models-place-")
	if err != nil {
		t.Skip("no /dev/shm")
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	root := t.TempDir()
	var a, b syscall.Stat_t
	if syscall.Stat(shm, &a) != nil || syscall.Stat(root, &b) != nil || a.Dev == b.Dev {
		t.Skip("/dev/shm is on the same file system as the temp dir")
	}
	blob := makeBlob(t, root, []byte("x"))
	target := filepath.Join(shm, "loras", "x.bin")
	if err := Place(blob, target); err != nil {
		t.Fatal(err)
	}
	dest, err := os.Readlink(target)
	if err != nil || filepath.IsAbs(dest) {
		t.Fatalf("want a relative symlink, got %q, %v", dest, err)
	}
	if got, err := os.ReadFile(target); err != nil || string(got) != "x" {
		t.Fatalf("read through the link: %q, %v", got, err)
	}
}

func TestPlaceMissingBlob(t *testing.T) {
	err := Place(Blob{Path: filepath.Join(t.TempDir(), "nope")}, filepath.Join(t.TempDir(), "t"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}
