// Package proc starts the worker's child processes (pip, venv creation,
// interpreter probes, ComfyUI) so that none outlives the worker:
//
//   - each child leads its own process group, so everything it starts
//     (build backends, compilers, custom-node helpers) can be killed with
//     it, and a Ctrl+C meant for the worker is not also delivered to pip;
//   - the kernel sends it SIGKILL when the worker dies, even by kill -9
//     (Linux's parent-death signal), so an orphaned pip can never go on
//     writing into a venv that a new realize has taken over;
//   - cancelling the context kills the whole group, and the group is
//     killed again once the child has exited, taking any straggler with
//     it.
//
// The parent-death signal is tied to the OS thread that forks, not to the
// process: if that thread ended while the child lived, the child would be
// killed early. Go ends a thread only when a goroutine locked to it
// returns, so Run and Start fork from a goroutine locked to its thread
// until the child has been waited for.
package proc

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// WaitDelay bounds how long Wait waits for output pipes that an escaped
// descendant keeps open after the child and its group are gone.
const WaitDelay = 5 * time.Second

// Command is exec.CommandContext with the package's policy: its own
// process group, the parent-death signal, and ctx's end killing the group.
// Start it with Run or Start, never with its own methods.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = WaitDelay
	return cmd
}

// Run starts cmd and waits for it, as exec.Cmd.Run does.
func Run(cmd *exec.Cmd) error {
	wait, err := Start(cmd)
	if err != nil {
		return err
	}
	return wait()
}

// Start starts cmd and returns the function that waits for it, which the
// caller must call exactly once. Until then a goroutine holds the OS
// thread that forked the child, so the parent-death signal stays armed
// for as long as the child runs, and only for that long.
func Start(cmd *exec.Cmd) (wait func() error, err error) {
	if cmd.SysProcAttr == nil {
		return nil, errors.New("proc: start a command made by proc.Command")
	}
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		// What the child left behind in its group goes with it.
		killGroup(cmd)
		done <- err
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return func() error { return <-done }, nil
}

// killGroup sends SIGKILL to cmd's process group; a group already gone is
// no error.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
