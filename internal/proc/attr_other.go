//go:build !linux

package proc

import "syscall"

// Elsewhere there is no parent-death signal; the process group still lets
// a cancel kill everything the child started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
