package netvol

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// serveGrace is how long Close waits for the server to stop once the
// kernel has let go of the mount.
const serveGrace = 10 * time.Second

// unmount takes the volume down even when it is busy. A plain unmount
// (go-fuse retries it for a moment) is the normal case; a busy mount is
// detached from the tree, which is what the test needs to see gone, and
// its connection aborted, because a detached mount lives on, served by
// this process, until its last open file is closed.
func (v *Volume) unmount() error {
	err := v.srv.Unmount()
	if err != nil {
		if derr := unix.Unmount(v.dir, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
			return fmt.Errorf("netvol: unmount %s: %v; detach: %w", v.dir, err, derr)
		}
		if v.dev != 0 {
			if aerr := abortConnection(v.dev); aerr != nil {
				return fmt.Errorf("netvol: %s was busy and is detached, but its server may run on: %w", v.dir, aerr)
			}
		}
	}
	select {
	case <-v.done:
		return nil
	case <-time.After(serveGrace):
		return fmt.Errorf("netvol: the server of %s did not stop within %v of the unmount", v.dir, serveGrace)
	}
}

// abortConnection aborts the FUSE connection of the mount with device
// number dev through the fusectl file system: every request on it fails
// from then on and the server's reads return, so it stops. fusectl is
// mounted on a temporary directory when it is not mounted already, and
// unmounted again.
func abortConnection(dev uint64) error {
	name := strconv.FormatUint(uint64(unix.Minor(dev)), 10)
	const sys = "/sys/fs/fuse/connections"
	if _, err := os.Stat(filepath.Join(sys, name)); err == nil {
		return writeAbort(filepath.Join(sys, name))
	}
	dir, err := os.MkdirTemp("", "netvol-fusectl-")
	if err != nil {
		return fmt.Errorf("abort FUSE connection %s: %w", name, err)
	}
	defer os.Remove(dir)
	if err := unix.Mount("fusectl", dir, "fusectl", 0, ""); err != nil {
		return fmt.Errorf("abort FUSE connection %s: mount fusectl: %w", name, err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	return writeAbort(filepath.Join(dir, name))
}

func writeAbort(conn string) error {
	if err := os.WriteFile(filepath.Join(conn, "abort"), []byte("1"), 0); err != nil {
		return fmt.Errorf("abort FUSE connection: %w", err)
	}
	return nil
}
