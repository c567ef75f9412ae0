package netvol

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Command returns a command that runs name inside the host, in the
// current directory's path (or cmd.Dir's) there, with the caller's
// environment unless Env is set. The command's process is name itself
// once it has started: the chain of sh and nsenter that gets it into the
// namespace replaces itself with exec, so a signal sent to cmd.Process
// reaches the program. ctx kills it as in exec.CommandContext.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	prog := name
	var lookErr error
	if !strings.Contains(name, "/") {
		prog, lookErr = exec.LookPath(name)
	}
	nsenter, nsErr := exec.LookPath("nsenter")
	// The outer shell notes the working directory by path; entering the
	// namespace resets it to /, and the inner shell goes back to that
	// path, which inside the host may be on the host's own mount.
	const script = `nsenter=$1 pid=$2; shift 2; exec "$nsenter" --target "$pid" --mount -- /bin/sh -c 'cd -- "$0" && exec "$@"' "$(pwd -P)" "$@"`
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script, "netvol-enter", nsenter, fmt.Sprint(h.cmd.Process.Pid), prog)
	cmd.Args = append(cmd.Args, args...)
	switch {
	case lookErr != nil:
		cmd.Err = fmt.Errorf("netvol: run %s in host: %w", name, lookErr)
	case nsErr != nil:
		cmd.Err = fmt.Errorf("netvol: running a command in a host needs nsenter (Debian package util-linux): %w", nsErr)
	}
	return cmd
}

// killNamespace sends SIGKILL to every process in mount namespace ns
// except pid except, and waits (briefly) until they have left it: a dying
// process holds its files, and with them the mount, until then.
func killNamespace(ns string, except int) {
	inNS := func() []int {
		var pids []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == except || pid == os.Getpid() {
				continue
			}
			if l, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && l == ns {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		pids := inNS()
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
