package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// Publish packs dir into a snapshot at path, unless one is there already.
// The file is written under a private random name beside path, fsynced,
// and published by a hard link, which fails when another writer was first:
// then that writer's file stays and this one is dropped. won reports
// whether this call's file is the one at path.
func Publish(ctx context.Context, dir, path string, opts PackOptions) (st Stats, won bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return st, false, nil
	}
	tmp, err := createTemp(path)
	if err != nil {
		return st, false, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if st, err = Pack(ctx, dir, bw, opts); err != nil {
		return st, false, err
	}
	if err := bw.Flush(); err != nil {
		return st, false, fmt.Errorf("write snapshot %s: %w", path, err)
	}
	won, err = publishFile(tmp, path)
	return st, won, err
}

// PublishAndUnpack packs dir once into a new snapshot at path and into
// dest at the same time: a build without a snapshot is read from the
// volume once, not twice. A snapshot that cannot be written (a read-only
// volume, a full one) does not stop the unpack; its error is returned as
// pubErr. err is the unpack's, or the pack's.
func PublishAndUnpack(ctx context.Context, dir, path string, popts PackOptions, dest string, uopts UnpackOptions) (meta Meta, st Stats, pubErr, err error) {
	vol := &volumeWriter{}
	if tmp, err := createTemp(path); err != nil {
		vol.err = err
	} else {
		vol.f, vol.w = tmp, bufio.NewWriterSize(tmp, 1<<20)
		defer func() {
			tmp.Close()
			os.Remove(tmp.Name())
		}()
	}
	pr, pw := io.Pipe()
	var packErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, packErr = Pack(ctx, dir, io.MultiWriter(vol, pw), popts)
		pw.CloseWithError(packErr)
	})
	meta, st, err = Unpack(ctx, pr, dest, uopts)
	// Unblock the packer if the unpack stopped early.
	pr.CloseWithError(errors.New("unpack stopped"))
	wg.Wait()
	if packErr != nil && (err == nil || IsCorrupt(err)) {
		// The stream was cut by the packer: its error is the cause.
		err = packErr
	}
	if err != nil {
		return meta, st, nil, err
	}
	if vol.err == nil {
		vol.err = vol.w.Flush()
	}
	if vol.err == nil {
		_, vol.err = publishFile(vol.f, path)
	}
	return meta, st, vol.err, nil
}

// volumeWriter writes to the snapshot's temp file until the first error,
// then drops what follows, keeping the error.
type volumeWriter struct {
	f   *os.File
	w   *bufio.Writer
	err error
}

func (v *volumeWriter) Write(p []byte) (int, error) {
	if v.err == nil {
		_, v.err = v.w.Write(p)
	}
	return len(p), nil
}

func createTemp(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot directory: %w", err)
	}
	// CreateTemp's name is random, never a pid: every container's worker
	// may be pid 1.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("write snapshot: %w", err)
	}
	return f, nil
}

// publishFile fsyncs tmp and gives it path's name unless path exists.
func publishFile(tmp *os.File, path string) (bool, error) {
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("write snapshot %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("write snapshot %s: %w", path, err)
	}
	err := os.Link(tmp.Name(), path)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrExist):
		return false, nil
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.ENOSYS):
		// A file system without hard links: rename, which replaces a
		// file published meanwhile by one of the same key (and content),
		// while a reader of that one keeps reading what it opened.
		if _, serr := os.Lstat(path); serr == nil {
			return false, nil
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return false, fmt.Errorf("publish snapshot %s: %w", path, err)
		}
	default:
		return false, fmt.Errorf("publish snapshot %s: %w", path, err)
	}
	return true, fsutil.SyncDir(filepath.Dir(path))
}

// Discard removes the snapshot at path if it is still the file seen (the
// one found damaged), so that it is packed again. A file published by
// someone else since then is left alone.
func Discard(path string, seen os.FileInfo) error {
	cur, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if seen != nil && !os.SameFile(seen, cur) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove damaged snapshot %s: %w", path, err)
	}
	return nil
}
