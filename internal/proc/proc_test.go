package proc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the "worker" that gets killed: with this
// variable set, TestMain runs helperWorker instead of the tests.
const helperEnv = "PROC_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helperWorker()
	}
	// Orphans are re-parented to this process, so a test can wait for
	// them and see how they ended (a container's init may never reap
	// them, and a zombie looks alive in /proc).
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// helperWorker is the worker of TestChildrenDieWithTheWorker: it starts
// `sleep` once through proc and once with plain os/exec, prints both pids
// and waits to be killed.
func helperWorker() {
	guarded := Command(context.Background(), "sleep", "60")
	if _, err := Start(guarded); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plain := exec.Command("sleep", "60")
	if err := plain.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d %d\n", guarded.Process.Pid, plain.Process.Pid)
	time.Sleep(time.Minute)
	os.Exit(0)
}

// exitOf waits up to d for process pid (a child or an orphan re-parented
// to this process) and returns how it ended; ok is false if it still runs.
func exitOf(t *testing.T, pid int, d time.Duration) (ws unix.WaitStatus, ok bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil {
			t.Fatalf("wait for %d: %v", pid, err)
		}
		if got == pid {
			return ws, true
		}
		if time.Now().After(deadline) {
			return ws, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestChildrenDieWithTheWorker: kill -9 of the worker takes its proc
// children with it within a second; a child started without proc survives
// (what pip, venv and the probes did before).
func TestChildrenDieWithTheWorker(t *testing.T) {
	worker := exec.Command(os.Args[0], "-test.run=^$")
	worker.Env = append(os.Environ(), helperEnv+"=1")
	out, err := worker.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		worker.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	var guarded, plain int
	if _, err := fmt.Sscan(line, &guarded, &plain); err != nil {
		t.Fatalf("helper said %q", line)
	}
	t.Cleanup(func() { syscall.Kill(plain, syscall.SIGKILL); exitOf(t, plain, time.Second) })

	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	worker.Wait()
	start := time.Now()
	ws, ok := exitOf(t, guarded, time.Second)
	if !ok {
		t.Fatalf("the proc child %d still runs 1s after kill -9 of its parent", guarded)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the proc child ended with %v, want SIGKILL", ws)
	}
	t.Logf("proc child gone %v after its parent", time.Since(start).Round(time.Millisecond))
	if _, ok := exitOf(t, plain, 200*time.Millisecond); ok {
		t.Error("the plain child died too: the test would pass without proc")
	}
}

// startShell runs script through proc and returns the pid the script
// prints (a background grandchild's) and the run's result channel.
func startShell(t *testing.T, ctx context.Context, script string) (int, chan error) {
	t.Helper()
	cmd := Command(ctx, "sh", "-c", script)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	res := make(chan error, 1)
	wait, err := Start(cmd)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() { res <- wait() }()
	line, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return pid, res
}

func TestGroupIsKilled(t *testing.T) {
	cases := []struct {
		name   string
		script string
		cancel bool
	}{
		// Cancelling (Ctrl+C, a job's timeout) kills the child and all it
		// started.
		{"on cancel", `sleep 60 >/dev/null & echo $!; wait`, true},
		// A child that exits leaves nothing running behind it.
		{"on exit", `sleep 60 >/dev/null & echo $!`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			grandchild, res := startShell(t, ctx, tc.script)
			if tc.cancel {
				cancel()
			}
			select {
			case <-res:
			case <-time.After(3 * time.Second):
				t.Fatal("the run did not return")
			}
			ws, ok := exitOf(t, grandchild, time.Second)
			if !ok {
				syscall.Kill(grandchild, syscall.SIGKILL)
				t.Fatalf("grandchild %d survived", grandchild)
			}
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("grandchild ended with %v, want SIGKILL", ws)
			}
		})
	}
}

func TestRunReportsExitAndStartErrors(t *testing.T) {
	var out bytes.Buffer
	cmd := Command(context.Background(), "sh", "-c", "echo hi; exit 3")
	cmd.Stdout = &out
	err := Run(cmd)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || out.String() != "hi\n" {
		t.Errorf("Run = %v, output %q", err, out.String())
	}
	if err := Run(Command(context.Background(), "/nonexistent/tool")); err == nil {
		t.Error("starting a missing program succeeded")
	}
	if _, err := Start(exec.Command("true")); err == nil {
		t.Error("Start accepted a command not made by Command")
	}
}
