package netvol

import (
	"context"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/time/rate"
)

// node is a loopback node that pays the network's price. Everything it
// does not override (rename, link, symlink, mkdir, unlink, setattr, ...)
// is go-fuse's loopback unchanged; file handles stay go-fuse's too, so
// fsync, flush, fallocate and lseek work as on the backing directory.
// Reads and writes are taken over at the node, which go-fuse asks first.
type node struct {
	*fs.LoopbackNode
	st *counters
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeReader         = (*node)(nil)
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeWritever       = (*node)(nil)
)

// WrapChild makes every node the loopback creates one of ours.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if lb, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: lb, st: n.st}
	}
	return ops
}

// roundTrip counts a metadata request and waits MetaDelay; an interrupted
// request (the caller got a signal) stops waiting.
func (n *node) roundTrip(ctx context.Context, c *atomic.Int64) syscall.Errno {
	c.Add(1)
	d := n.st.opts.MetaDelay
	if d <= 0 {
		return 0
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case <-ctx.Done():
		return syscall.EINTR
	}
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.roundTrip(ctx, &n.st.lookups); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Lookup(ctx, name, out)
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e := n.roundTrip(ctx, &n.st.getattrs); e != 0 {
		return e
	}
	return n.LoopbackNode.Getattr(ctx, f, out)
}

func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if e := n.roundTrip(ctx, &n.st.getattrs); e != 0 {
		return e
	}
	return n.LoopbackNode.Statx(ctx, f, flags, mask, out)
}

// Open drops O_DIRECT for the backing file, which may not support it
// (tmpfs); the kernel still sends a direct open's reads and writes here
// uncached, which is what O_DIRECT means to the caller.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if e := n.roundTrip(ctx, &n.st.opens); e != 0 {
		return nil, 0, e
	}
	return n.LoopbackNode.Open(ctx, flags&^syscall.O_DIRECT)
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if e := n.roundTrip(ctx, &n.st.opens); e != 0 {
		return nil, nil, 0, e
	}
	return n.LoopbackNode.Create(ctx, name, flags&^syscall.O_DIRECT, mode, out)
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if e := n.roundTrip(ctx, &n.st.readdirs); e != 0 {
		return nil, 0, e
	}
	return n.LoopbackNode.OpendirHandle(ctx, flags)
}

// Read reads now rather than handing the kernel a descriptor to splice
// from, so the bytes can be counted and paced.
func (n *node) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	r, ok := f.(fs.FileReader)
	if !ok {
		return nil, syscall.EBADF
	}
	res, errno := r.Read(ctx, dest, off)
	if errno != 0 {
		return nil, errno
	}
	data, status := res.Bytes(dest)
	res.Done()
	if !status.Ok() {
		return nil, syscall.Errno(status)
	}
	n.st.bytesRead.Add(int64(len(data)))
	if err := n.st.read.wait(ctx, len(data)); err != nil {
		return nil, syscall.EINTR
	}
	return fuse.ReadResultData(data), 0
}

func (n *node) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	w, ok := f.(fs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	if err := n.st.write.wait(ctx, len(data)); err != nil {
		return 0, syscall.EINTR
	}
	written, errno := w.Write(ctx, data, off)
	n.st.bytesWritten.Add(int64(written))
	return written, errno
}

// Writev serves the writes go-fuse receives in pieces; without it they
// would fail once Write is overridden.
func (n *node) Writev(ctx context.Context, f fs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	total := 0
	for _, b := range data {
		total += len(b)
	}
	if err := n.st.write.wait(ctx, total); err != nil {
		return 0, syscall.EINTR
	}
	var written uint32
	var errno syscall.Errno
	if wv, ok := f.(fs.FileWritever); ok {
		written, errno = wv.Writev(ctx, data, off)
	} else if w, ok := f.(fs.FileWriter); ok {
		buf := make([]byte, 0, total)
		for _, b := range data {
			buf = append(buf, b...)
		}
		written, errno = w.Write(ctx, buf, off)
	} else {
		return 0, syscall.EBADF
	}
	n.st.bytesWritten.Add(int64(written))
	return written, errno
}

// limiter paces bytes with a token bucket; nil means no cap.
type limiter struct{ l *rate.Limiter }

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	// A burst of 1/20 s keeps the first request from being free for long
	// while large requests still go out in a few waits.
	burst := max(int(bytesPerSec/20), 1)
	return &limiter{l: rate.NewLimiter(rate.Limit(bytesPerSec), burst)}
}

func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		chunk := min(n, l.l.Burst())
		if err := l.l.WaitN(ctx, chunk); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}
