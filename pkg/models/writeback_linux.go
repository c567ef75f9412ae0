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
