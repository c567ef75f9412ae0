package models

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks Linux to begin writing a range back without waiting,
// so the fsync before a blob is committed does not flush a whole file at
// once. Failure only costs speed.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}

// localDisk reports whether f is on a local block file system whose direct
// I/O is dependable. Network and FUSE file systems (where a RunPod network
// volume may live) keep the page cache: there direct I/O can turn every
// write into a synchronous round trip, or be refused.
func localDisk(f *os.File) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC:
		return true
	}
	return false
}

// setDirectIO turns O_DIRECT on or off for f's writes; false if it could
// not be changed.
func setDirectIO(f *os.File, on bool) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			return
		}
		if on {
			fl |= unix.O_DIRECT
		} else {
			fl &^= unix.O_DIRECT
		}
		_, err = unix.FcntlInt(fd, unix.F_SETFL, fl)
		ok = err == nil
	})
	return ok
}

// diskFree is the space an unprivileged process may still use in dir's
// file system.
func diskFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
