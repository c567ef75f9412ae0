package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Packing reads the build where it is, on the network volume, where every
// listing, stat and open is a round trip. They are issued many at a time
// (a network file system serves them concurrently), so packing costs the
// round trips of the deepest path rather than of every file: the tree is
// listed and stat'ed by a pool, and files are read ahead of the writer by
// another, in the order the snapshot holds them.

// ioParallel is how many listings, stats or reads are in flight at once.
const ioParallel = 32

// entry is one thing to pack. Its name is looked up relative to its open
// parent directory (fstatat, openat): one round trip, where a path costs
// one per component on a file system that revalidates every lookup.
type entry struct {
	rel, path, name string
	parent          *entry // nil for the root
	mode            fs.FileMode
	size            int64
	mtime           time.Time
	target          string // a symlink's
	link            bool   // a file left on the volume
	children        []*entry
}

func (e *entry) isReg() bool { return e.mode.IsRegular() }

// list returns dir's entries in lexical walk order (a directory before
// its contents, names sorted), as filepath.WalkDir visits them. Directories
// are listed in parallel; each lists and stats its own entries.
func list(ctx context.Context, dir string, opts PackOptions) ([]*entry, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := newQueue(ctx)
	root := &entry{path: dir, mode: fs.ModeDir}
	var listDir func(d *entry) error
	listDir = func(d *entry) error {
		f, err := os.Open(d.path)
		if err != nil {
			return err
		}
		defer f.Close()
		des, err := f.ReadDir(-1)
		if err != nil {
			return err
		}
		sort.Slice(des, func(i, j int) bool { return des[i].Name() < des[j].Name() })
		fd := int(f.Fd())
		for _, de := range des {
			rel := de.Name()
			if d.rel != "" {
				rel = d.rel + "/" + rel
			}
			if rel == metaName || opts.Skip != nil && opts.Skip(rel, de) {
				continue
			}
			e := &entry{rel: rel, name: de.Name(), path: filepath.Join(d.path, de.Name()), parent: d}
			var st unix.Stat_t
			if err := noEINTR(func() error { return unix.Fstatat(fd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
				return &os.PathError{Op: "stat", Path: e.path, Err: err}
			}
			e.size, e.mtime = st.Size, time.Unix(st.Mtim.Unix())
			perm := fs.FileMode(st.Mode & 0o777)
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				e.mode = fs.ModeDir | perm
				q.submit(func() error { return listDir(e) })
			case unix.S_IFLNK:
				e.mode = fs.ModeSymlink | perm
				if e.target, err = readlinkat(fd, e.name); err != nil {
					return &os.PathError{Op: "readlink", Path: e.path, Err: err}
				}
			case unix.S_IFREG:
				e.mode = perm
				e.link = opts.Link != nil && opts.Link(rel, de)
			default:
				continue // sockets, fifos, devices: nothing a build needs
			}
			d.children = append(d.children, e)
		}
		return nil
	}
	q.submit(func() error { return listDir(root) })
	if err := q.run(ioParallel); err != nil {
		return nil, err
	}
	var out []*entry
	var flatten func(e *entry)
	flatten = func(e *entry) {
		for _, c := range e.children {
			out = append(out, c)
			flatten(c)
		}
	}
	flatten(root)
	return out, nil
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := noEINTR(func() (err error) {
			n, err = unix.Readlinkat(dirfd, name, buf)
			return err
		})
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// queue runs submitted jobs on a fixed number of goroutines until none is
// left; jobs may submit more. The first error stops it.
type queue struct {
	ctx     context.Context
	mu      sync.Mutex
	cond    *sync.Cond
	jobs    []func() error
	pending int // submitted and not finished
	err     error
}

func newQueue(ctx context.Context) *queue {
	q := &queue{ctx: ctx}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) submit(f func() error) {
	q.mu.Lock()
	q.jobs = append(q.jobs, f)
	q.pending++
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *queue) run(n int) error {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				q.mu.Lock()
				for len(q.jobs) == 0 && q.pending > 0 {
					q.cond.Wait()
				}
				if q.pending == 0 {
					q.mu.Unlock()
					q.cond.Broadcast()
					return
				}
				f := q.jobs[len(q.jobs)-1]
				q.jobs = q.jobs[:len(q.jobs)-1]
				failed := q.err != nil
				q.mu.Unlock()
				var err error
				if !failed {
					if err = q.ctx.Err(); err == nil {
						err = f()
					}
				}
				q.mu.Lock()
				if err != nil && q.err == nil {
					q.err = err
				}
				q.pending--
				q.mu.Unlock()
				q.cond.Broadcast()
			}
		})
	}
	wg.Wait()
	return q.err
}

// readAhead reads the small regular files of entries on a pool, at most
// a window of them ahead of the caller, who takes each in order. A job is
// a run of files of one directory, opened once and read with openat.
type readAhead struct {
	slots  map[int]*slot
	window chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type slot struct {
	done chan struct{}
	data []byte
	err  error
}

// runMax bounds a run: a job's files hold that many places in the window.
const runMax = 16

func startReadAhead(ctx context.Context, entries []*entry) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{slots: map[int]*slot{}, window: make(chan struct{}, 8*ioParallel), cancel: cancel}
	var runs [][]int
	for i, e := range entries {
		if !e.isReg() || e.link || e.size > inlineSize {
			continue
		}
		ra.slots[i] = &slot{done: make(chan struct{})}
		if n := len(runs); n > 0 {
			last := runs[n-1]
			if len(last) < runMax && entries[last[len(last)-1]].parent == e.parent {
				runs[n-1] = append(last, i)
				continue
			}
		}
		runs = append(runs, []int{i})
	}
	jobs := make(chan []int)
	ra.wg.Go(func() {
		defer close(jobs)
		for _, run := range runs {
			for range run {
				select {
				case ra.window <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
			jobs <- run
		}
	})
	for range ioParallel {
		ra.wg.Go(func() {
			for run := range jobs {
				readRun(ctx, entries, run, ra.slots)
			}
		})
	}
	return ra
}

// readRun reads a run of files of one directory into their slots.
func readRun(ctx context.Context, entries []*entry, run []int, slots map[int]*slot) {
	dir, err := os.Open(entries[run[0]].parent.path)
	if err == nil {
		defer dir.Close()
	}
	for _, i := range run {
		s := slots[i]
		if s.err = err; s.err == nil {
			if s.err = ctx.Err(); s.err == nil {
				s.data, s.err = readExactly(int(dir.Fd()), entries[i])
			}
		}
		close(s.done)
	}
}

// take waits for entry i's content; the slot's room in the window is
// given back.
func (ra *readAhead) take(ctx context.Context, i int) ([]byte, error) {
	s := ra.slots[i]
	select {
	case <-s.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-ra.window
	return s.data, s.err
}

func (ra *readAhead) stop() {
	ra.cancel()
	ra.wg.Wait()
}

// readExactly reads e, which must still have the size it was listed
// with: a build that changes while it is packed is an error, not a short
// or long entry.
func readExactly(dirfd int, e *entry) ([]byte, error) {
	var fd int
	err := noEINTR(func() (err error) {
		fd, err = unix.Openat(dirfd, e.name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: e.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), e.path)
	defer f.Close()
	buf := make([]byte, e.size+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if int64(n) != e.size {
		return nil, fmt.Errorf("changed while packed (%d bytes, listed with %d)", n, e.size)
	}
	return buf[:n], nil
}
