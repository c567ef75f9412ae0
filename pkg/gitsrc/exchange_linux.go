package gitsrc

import "golang.org/x/sys/unix"

// exchange swaps the directory entries a and b in one step
// (renameat2 RENAME_EXCHANGE), so b is never missing, not even for an
// instant. It fails on file systems without support; callers fall back.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
