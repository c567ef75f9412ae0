package netvol

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Options shape how a volume behaves. The zero value is a plain loopback
// that caches nothing in the kernel.
type Options struct {
	// MetaDelay is added to every LOOKUP, GETATTR (and STATX), OPEN, CREATE
	// and OPENDIR: the round trip of a network file system.
	MetaDelay time.Duration
	// ReadBandwidth and WriteBandwidth cap the bytes per second read from
	// and written to the volume; 0 means no cap.
	ReadBandwidth, WriteBandwidth int64
	// EntryTimeout and AttrTimeout let the kernel cache names and
	// attributes for that long. The default, 0, revalidates every time, as
	// a network file system does; a cache would hide MetaDelay.
	EntryTimeout, AttrTimeout time.Duration
}

// Stats counts the requests the volume served since it was mounted.
// Requests the kernel answered from its own caches are not counted.
type Stats struct {
	Lookups      int64 `json:"lookups"`
	Getattrs     int64 `json:"getattrs"` // GETATTR and STATX
	Opens        int64 `json:"opens"`    // OPEN and CREATE of files
	Readdirs     int64 `json:"readdirs"` // OPENDIR: one per directory listing
	BytesRead    int64 `json:"bytes_read"`
	BytesWritten int64 `json:"bytes_written"`
}

// ErrNoFUSE is returned by Mount and StartHost where FUSE cannot be used.
var ErrNoFUSE = errors.New("netvol needs root and /dev/fuse (CI runs as root with /dev/fuse); run the tests as root on Linux")

// Volume is a mounted simulated network volume.
type Volume struct {
	dir  string
	dev  uint64 // the mount's device number: names its FUSE connection
	srv  *fuse.Server
	done chan struct{} // closed when the serve loop has returned
	st   *counters

	closeOnce sync.Once
	closeErr  error
}

// counters and the limits are shared by every node of one volume.
type counters struct {
	opts        Options
	read, write *limiter

	lookups, getattrs, opens, readdirs atomic.Int64
	bytesRead, bytesWritten            atomic.Int64
}

// Mount serves backing at mountpoint (an existing directory) until Close.
// ctx bounds the mount itself, not the volume's life.
func Mount(ctx context.Context, backing, mountpoint string, opts Options) (*Volume, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkFUSE(); err != nil {
		return nil, err
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("netvol: backing directory: %w", err)
	}
	mountpoint, err = filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("netvol: mount point: %w", err)
	}
	var bst syscall.Stat_t
	if err := syscall.Stat(backing, &bst); err != nil {
		return nil, fmt.Errorf("netvol: backing directory %s: %w", backing, err)
	}
	if bst.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, fmt.Errorf("netvol: backing %s is not a directory", backing)
	}

	st := &counters{opts: opts, read: newLimiter(opts.ReadBandwidth), write: newLimiter(opts.WriteBandwidth)}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(bst.Dev)}
	rootNode := &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, st: st}
	root.RootNode = rootNode

	entry, attr := opts.EntryTimeout, opts.AttrTimeout
	fsOpts := &fs.Options{
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &entry,
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			DirectMountStrict: true, // root: mount(2) itself, no fusermount binary
			FsName:            backing,
			Name:              "netvol",
			// READDIRPLUS would run the delayed LOOKUP once per entry
			// inside one listing; without it `ls -l` costs a LOOKUP per
			// file, as on a file system without it.
			DisableReadDirPlus: true,
			// Passthrough would send reads and writes straight to the
			// backing file: no bandwidth cap, no byte counters.
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
			// Locks are not forwarded (EnableLocks stays off): the kernel
			// keeps them per mount, which is what makes two mounts two
			// hosts.
		},
	}
	srv, err := fuse.NewServer(fs.NewNodeFS(rootNode, fsOpts), mountpoint, &fsOpts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("netvol: mount %s on %s: %w", backing, mountpoint, err)
	}
	v := &Volume{dir: mountpoint, srv: srv, done: make(chan struct{}), st: st}
	go func() {
		defer close(v.done)
		srv.Serve()
	}()
	if err := srv.WaitMount(); err != nil {
		v.Close()
		return nil, fmt.Errorf("netvol: mount %s on %s: %w", backing, mountpoint, err)
	}
	var mst syscall.Stat_t
	if err := syscall.Stat(mountpoint, &mst); err != nil {
		v.Close()
		return nil, fmt.Errorf("netvol: mounted %s but cannot stat it: %w", mountpoint, err)
	}
	v.dev = mst.Dev
	v.ResetStats() // the stat above is ours, not the test's
	return v, nil
}

// MountT mounts backing for the duration of t. An empty mountpoint mounts
// on a new temporary directory. The volume is unmounted when t ends, also
// when the test fails or files are still open there.
func MountT(t testing.TB, backing, mountpoint string, opts Options) *Volume {
	t.Helper()
	if mountpoint == "" {
		mountpoint = t.TempDir()
	}
	v, err := Mount(context.Background(), backing, mountpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A test that closed the volume itself has seen the error.
		if first, err := v.close(); err != nil && first {
			t.Error(err)
		}
	})
	return v
}

// Dir is the mount point.
func (v *Volume) Dir() string { return v.dir }

// Stats returns the counters so far.
func (v *Volume) Stats() Stats { return v.st.snapshot() }

// ResetStats sets every counter to zero.
func (v *Volume) ResetStats() {
	for _, c := range []*atomic.Int64{&v.st.lookups, &v.st.getattrs, &v.st.opens, &v.st.readdirs, &v.st.bytesRead, &v.st.bytesWritten} {
		c.Store(0)
	}
}

// Close unmounts the volume and stops its server. Files still open on it
// do not keep it mounted: the mount is detached and its FUSE connection
// aborted, so they fail from then on. Close is safe to call twice.
func (v *Volume) Close() error {
	_, err := v.close()
	return err
}

func (v *Volume) close() (first bool, err error) {
	v.closeOnce.Do(func() { v.closeErr, first = v.unmount(), true })
	return first, v.closeErr
}

func (c *counters) snapshot() Stats {
	return Stats{
		Lookups:      c.lookups.Load(),
		Getattrs:     c.getattrs.Load(),
		Opens:        c.opens.Load(),
		Readdirs:     c.readdirs.Load(),
		BytesRead:    c.bytesRead.Load(),
		BytesWritten: c.bytesWritten.Load(),
	}
}

// checkFUSE explains up front what a failing mount(2) would say obscurely.
func checkFUSE() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (running as uid %d)", ErrNoFUSE, os.Geteuid())
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w (%v)", ErrNoFUSE, err)
	}
	return nil
}
