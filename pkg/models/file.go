package models

import (
	"context"
	"fmt"
	"io"
	"os"
)

// fileOrigin copies a local file into the store. Copying (rather than
// linking the original) keeps the build independent of a path that may
// not exist on another machine or mount.
type fileOrigin struct{ src Source }

func (o *fileOrigin) describe() string { return o.src.Redacted() }

func (o *fileOrigin) open(ctx context.Context, offset int64, validator string) (*stream, error) {
	f, err := os.Open(o.src.Path)
	if err != nil {
		return nil, permanent(fmt.Errorf("local model file: %w", err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, permanent(err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, permanent(fmt.Errorf("local model %s is not a regular file", o.src.Path))
	}
	v := fmt.Sprintf("%d-%d", fi.Size(), fi.ModTime().UnixNano())
	if (validator != "" && validator != v) || offset > fi.Size() {
		offset = 0
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, permanent(err)
	}
	return &stream{body: ctxReadCloser{ctx, f}, start: offset, total: fi.Size(), validator: v}, nil
}

// ctxReadCloser stops a local copy when ctx ends: local reads never block
// long, so checking between reads is enough.
type ctxReadCloser struct {
	ctx context.Context
	f   *os.File
}

func (r ctxReadCloser) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.f.Read(p)
}

func (r ctxReadCloser) Close() error { return r.f.Close() }
