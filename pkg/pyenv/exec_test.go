package pyenv

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunKillsProcessGroup: cancelling kills the child's own children
// too, so a pip that spawned a build backend leaves nothing running.
func TestRunKillsProcessGroup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pids := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, command{name: "sh", args: []string{"-c", "sleep 60 & echo $!; wait"}, onLine: func(_, line string) {
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
				pids <- pid
			}
		}})
		done <- err
	}()
	var grandchild int
	select {
	case grandchild = <-pids:
	case <-time.After(10 * time.Second):
		t.Fatal("no pid printed")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("want context.Canceled, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(grandchild) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still running", grandchild)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports a process that exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestRunTailAndExit(t *testing.T) {
	t.Parallel()
	var script strings.Builder
	for i := 0; i < tailLines+10; i++ {
		script.WriteString("echo out" + strconv.Itoa(i) + "\n")
	}
	script.WriteString("echo ERROR: boom >&2\nprintf 'no newline'\nexit 3\n")
	res, err := run(context.Background(), command{name: "sh", args: []string{"-c", script.String()}, capture: true})
	var exit interface{ ExitCode() int }
	if !errors.As(err, &exit) || res.exitCode != 3 {
		t.Fatalf("err %v, exit %d", err, res.exitCode)
	}
	// The two streams interleave in any order; the unterminated last line
	// is flushed after both close.
	if len(res.tail) != tailLines || res.tail[len(res.tail)-1] != "no newline" || !strings.Contains(strings.Join(res.tail, "\n"), "ERROR: boom") {
		t.Errorf("tail (%d lines): %q", len(res.tail), res.tail)
	}
	if !strings.HasPrefix(string(res.stdout), "out0\n") {
		t.Errorf("stdout not captured whole: %.20q", res.stdout)
	}
	if _, err := run(context.Background(), command{name: "/nonexistent/tool"}); err == nil || !strings.Contains(err.Error(), "start") {
		t.Errorf("missing program: %v", err)
	}
}
