// Package fsutil holds the few file-system primitives every package that
// writes shared state needs: atomic replacement of a file, syncing of a
// directory entry, private temp names, leases kept fresh by a writer's
// heartbeat, and hard-link clones of immutable trees. Nothing half-written
// may ever be visible at a final path, and no two writers may ever share a
// temp name, because workers on many hosts write the same network volume.
package fsutil

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path through a private temp file in the
// same directory (see TempPath), fsyncs it, renames it over path and fsyncs
// the directory, so a reader sees either the old content or the new one,
// never a mix, and two writers on two hosts never share a temp file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileAtomicVia is WriteFileAtomic with the temp file in tmpDir (on
// path's file system), for directories whose readers list every file in
// them, such as a git repository's refs.
func WriteFileAtomicVia(tmpDir, path string, data []byte, perm os.FileMode) error {
	return writeAtomic(filepath.Join(tmpDir, filepath.Base(TempPath(path))), path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for content produced by a writer function.
// On any error the temp file is removed and path is untouched.
func WriteAtomic(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	return writeAtomic(TempPath(path), path, perm, write)
}

func writeAtomic(tmp, path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so a rename inside it survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
