package fsutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// cloneWorkers bounds the links in flight: each is one metadata round trip
// on a network volume, so overlapping them is what makes a clone fast.
const cloneWorkers = 16

// CloneTree makes dst (which must not exist) a copy of the tree at src in
// which every regular file is a hard link to src's, so it costs no data:
// directories are made with src's permissions, symlinks are copied as they
// are (a relative link stays relative). Where the file system refuses hard
// links the file is copied instead. skip, when not nil, leaves out entries
// (and whole directories) for which it returns true; rel is slash-separated.
//
// Hard links share the file: callers must treat the files of both trees
// as immutable and replace a file by writing a new one and renaming it
// over (which every writer of builds here does), never by writing into it.
func CloneTree(ctx context.Context, src, dst string, skip func(rel string, d fs.DirEntry) bool) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, fi.Mode().Perm()); err != nil {
		return err
	}
	type job struct{ from, to string }
	jobs := make(chan job)
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range cloneWorkers {
		wg.Go(func() {
			for j := range jobs {
				if err := linkOrCopy(j.from, j.to); err != nil {
					fail(fmt.Errorf("clone %s: %w", j.from, err))
					cancel()
				}
			}
		})
	}
	walkErr := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == src {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		if skip != nil && skip(filepath.ToSlash(rel), d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.Mkdir(to, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			select {
			case jobs <- job{p, to}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil // sockets, fifos: never part of a build
	})
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return walkErr
}

// linkOrCopy hard-links from to to, or copies it where links are refused.
func linkOrCopy(from, to string) error {
	err := os.Link(from, to)
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) || (errno != syscall.EPERM && errno != syscall.ENOTSUP && errno != syscall.EXDEV && errno != syscall.EMLINK && errno != syscall.ENOSYS) {
		return err
	}
	return copyFile(from, to)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(to, fi.ModTime(), fi.ModTime())
}
