//go:build linux

package netvol_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/netvol"
)

// twoHosts starts hosts a and b that share one directory at one path.
func twoHosts(t *testing.T) (shared, mountPath string, a, b *netvol.Host) {
	shared = t.TempDir()
	mountPath = filepath.Join(t.TempDir(), "runpod-volume")
	o := netvol.HostOptions{Shared: shared, MountPath: mountPath}
	return shared, mountPath, netvol.HostT(t, o), netvol.HostT(t, o)
}

// exitBusy is what flock(1) is told to exit with when the lock is taken.
const exitBusy = 3

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestHostsShareFilesButNotLocks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shared, mp, a, b := twoHosts(t)

	if len(mountedAnywhere(t, mp)) != 2 {
		t.Errorf("want one mount per host on %s, have %v", mp, mountedAnywhere(t, mp))
	}
	if own, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(own), " "+mp+" ") {
		t.Errorf("a host's mount is visible outside it")
	}

	// Files: written on A, read on B by a relative path from a working
	// directory on the volume, which only resolves inside the host.
	if out, err := a.Command(ctx, "sh", "-c", `echo hello > "$0/greeting"`, mp).CombinedOutput(); err != nil {
		t.Fatalf("write on A: %v: %s", err, out)
	}
	cat := b.Command(ctx, "cat", "greeting")
	cat.Dir = mp
	if out, err := cat.Output(); err != nil || string(out) != "hello\n" {
		t.Fatalf("read on B: %q, %v", out, err)
	}
	if got, err := os.ReadFile(filepath.Join(shared, "greeting")); err != nil || string(got) != "hello\n" {
		t.Errorf("shared directory has %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(mp, "greeting")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mount path outside the hosts is not empty: %v", err)
	}
	if sa, err := a.Stats(ctx); err != nil || sa.BytesWritten != 6 || sa.BytesRead != 0 {
		t.Errorf("A's stats %+v, %v: want the 6 bytes written and nothing read", sa, err)
	}
	if sb, err := b.Stats(ctx); err != nil || sb.Opens != 1 || sb.BytesRead != 6 {
		t.Errorf("B's stats %+v, %v: want one open and the 6 bytes read", sb, err)
	}

	// Locks (flock(1) from util-linux, as flock(2) is what the worker
	// uses): held by a process on A, which becomes sleep holding the
	// locked descriptor.
	lock := filepath.Join(mp, "realize.lock")
	holder := a.Command(ctx, "sh", "-c", `exec 9>>"$0" && flock 9 && echo locked && exec sleep 60`, lock)
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	try := func(h *netvol.Host) int {
		return exitCode(h.Command(ctx, "flock", "--nonblock", "--conflict-exit-code", fmt.Sprint(exitBusy), lock, "true").Run())
	}
	for _, tc := range []struct {
		name string
		h    *netvol.Host
		want int
	}{
		{"another host does not see the lock", b, 0},
		{"the same host does", a, exitBusy},
	} {
		if got := try(tc.h); got != tc.want {
			t.Errorf("%s: try exited %d, want %d", tc.name, got, tc.want)
		}
	}

	// kill -9 reaches the holder itself (not a wrapper around it): its
	// lock goes with it.
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = holder.Wait()
	if ws, ok := holder.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("holder ended with %v, want killed by SIGKILL", err)
	}
	if got := try(a); got != 0 {
		t.Errorf("after kill -9 of the holder, try on A exited %d, want 0", got)
	}

	for _, h := range []*netvol.Host{a, b} {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if m := mountedAnywhere(t, mp); len(m) > 0 {
		t.Errorf("mounted after Close: %v", m)
	}
}

// TestHostCloseKillsCommands: Close ends the programs still running in
// the host, even after the helper itself crashed, and leaves nothing
// mounted anywhere.
func TestHostCloseKillsCommands(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("helper killed first %v", crash), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			mp := filepath.Join(t.TempDir(), "vol")
			h, err := netvol.StartHost(ctx, netvol.HostOptions{Shared: t.TempDir(), MountPath: mp})
			if err != nil {
				t.Fatal(err)
			}
			sleeper := h.Command(ctx, "sleep", "60")
			sleeper.Dir = mp // holds the mount busy
			if err := sleeper.Start(); err != nil {
				h.Close()
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- sleeper.Wait() }()
			helperNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", h.PID()))
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", sleeper.Process.Pid))
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", sleeper.Process.Pid)); ns == helperNS && string(comm) == "sleep\n" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the command did not become sleep inside the host")
				}
			}
			if crash {
				if err := syscall.Kill(h.PID(), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					if _, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", h.PID())); err != nil {
						break
					}
				}
				// The command keeps the namespace, and in it the dead
				// mount, alive: Close must end it.
				if m := mountedAnywhere(t, mp); len(m) != 1 {
					t.Errorf("after the helper's crash: %v, want the command's namespace to hold the dead mount", m)
				}
			}
			start := time.Now()
			err = h.Close()
			if crash != (err != nil) {
				t.Errorf("Close: %v (want an error only when the helper was killed)", err)
			}
			select {
			case err := <-waited:
				if err == nil || !strings.Contains(err.Error(), "killed") {
					t.Errorf("sleeper ended with %v, want killed", err)
				}
			case <-time.After(5 * time.Second):
				sleeper.Process.Kill()
				t.Fatal("Close left the command running")
			}
			t.Logf("Close took %v", time.Since(start))
			if m := mountedAnywhere(t, mp); len(m) > 0 {
				t.Errorf("mounted after Close: %v", m)
			}
			if err := syscall.Kill(h.PID(), 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("helper still exists after Close: %v", err)
			}
		})
	}
}

func TestStartHostErrors(t *testing.T) {
	ctx := context.Background()
	shared := t.TempDir()
	for _, o := range []netvol.HostOptions{
		{Shared: "relative", MountPath: filepath.Join(t.TempDir(), "v")},
		{Shared: filepath.Join(shared, "missing"), MountPath: filepath.Join(t.TempDir(), "v")},
		{Shared: shared, MountPath: filepath.Join(shared, "inside")},
	} {
		if h, err := netvol.StartHost(ctx, o); err == nil {
			h.Close()
			t.Errorf("StartHost(%+v) succeeded", o)
		}
	}
}
