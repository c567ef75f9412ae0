package snapshot

import (
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A build is mostly small files, and a local copy's cost is creating them:
// a few system calls each, which the disk serves in parallel. One
// goroutine decodes the stream; a pool creates the files, each with as few
// calls as possible (open, write, set the time, close), without the
// runtime's poller (os.File registers every file with it).

// inlineSize is the largest file handed to the pool; larger files are
// streamed by the decoding goroutine itself, so memory stays bounded.
const inlineSize = 1 << 20

type fileJob struct {
	path  string
	name  string // for errors
	perm  uint32
	mtime time.Time
	data  *[]byte // from bufPool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// writers is the pool of file-creating goroutines of one unpack.
type writers struct {
	jobs chan fileJob
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func newWriters() *writers {
	w := &writers{jobs: make(chan fileJob, 256)}
	for range min(max(runtime.GOMAXPROCS(0), 2), 8) {
		w.wg.Go(func() {
			for j := range w.jobs {
				if w.failed() == nil {
					if err := createFile(j.path, j.perm, j.mtime, *j.data, nil, nil); err != nil {
						w.fail(unpackErr(j.name, err))
					}
				}
				*j.data = (*j.data)[:0]
				bufPool.Put(j.data)
			}
		})
	}
	return w
}

func (w *writers) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *writers) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// add queues a file read into a pooled buffer; it reports the pool's
// first error so the unpack stops early.
func (w *writers) add(j fileJob) error {
	w.jobs <- j
	return w.failed()
}

// close waits for every queued file and returns the first error.
func (w *writers) close() error {
	close(w.jobs)
	w.wg.Wait()
	return w.failed()
}

// createFile creates path (which must not exist) with data, or what r
// yields, then its permissions and modification time. Errors reading r
// are a damaged snapshot; the others are the local disk's.
func createFile(path string, perm uint32, mtime time.Time, data []byte, r io.Reader, buf []byte) error {
	var fd int
	err := noEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "create", Path: path, Err: err}
	}
	err = fill(fd, path, data, r, buf)
	if err == nil && perm&umask() != 0 {
		// The umask took bits the build has (group-writable files).
		err = pathErr("chmod", path, noEINTR(func() error { return unix.Fchmod(fd, perm) }))
	}
	if err == nil {
		err = pathErr("utimensat", path, noEINTR(func() error { return futimens(fd, mtime) }))
	}
	if cerr := unix.Close(fd); err == nil {
		err = pathErr("close", path, cerr)
	}
	return err
}

func fill(fd int, path string, data []byte, r io.Reader, buf []byte) error {
	if r == nil {
		return pathErr("write", path, writeAll(fd, data))
	}
	for {
		n, rerr := r.Read(buf)
		if err := writeAll(fd, buf[:n]); err != nil {
			return pathErr("write", path, err)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return corrupt("%v", rerr)
		}
	}
}

func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// futimens sets fd's access and modification times (utimensat with a
// NULL path, which acts on the descriptor).
func futimens(fd int, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// noEINTR retries a system call that a signal interrupted: FUSE, which
// network volumes often are, returns EINTR when the calling thread gets
// one, and the Go runtime sends itself signals to preempt goroutines.
// (The os package retries its own calls the same way.)
func noEINTR(call func() error) error {
	for {
		if err := call(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: path, Err: err}
}

// umask is the process's file mode creation mask, read once from
// /proc/self/status (setting it to read it would race with other
// goroutines creating files); when unknown every file is chmodded.
var umask = sync.OnceValue(func() uint32 {
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return uint32(m)
				}
			}
		}
	}
	return 0o777
})
