package signals

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

func TestContextRecordsTheSignal(t *testing.T) {
	ctx, stop := Context(context.Background(), syscall.SIGUSR1)
	defer stop()
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the context did not end on the signal")
	}
	var c Cause
	if !errors.As(context.Cause(ctx), &c) || c.Signal != syscall.SIGUSR1 {
		t.Fatalf("cause = %v", context.Cause(ctx))
	}
}

func TestExitCode(t *testing.T) {
	failed := errors.New("x")
	for _, tc := range []struct {
		sig    syscall.Signal
		err    error
		code   int
		signal bool
	}{
		{syscall.SIGINT, failed, 130, true},
		{syscall.SIGINT, nil, 130, true},
		{syscall.SIGTERM, failed, 143, true},
		{syscall.SIGTERM, nil, 0, false},
		{0, failed, 0, false},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		if tc.sig != 0 {
			cancel(Cause{tc.sig})
		} else {
			cancel(nil)
		}
		code, ok := ExitCode(ctx, tc.err)
		if code != tc.code || ok != tc.signal {
			t.Errorf("%v, %v: %d %v; want %d %v", tc.sig, tc.err, code, ok, tc.code, tc.signal)
		}
	}
}

// TestCauseText: the error a stopped command reports names the signal as
// a user sent it.
func TestCauseText(t *testing.T) {
	for sig, want := range map[syscall.Signal]string{
		syscall.SIGINT:  "interrupted (Ctrl+C, SIGINT)",
		syscall.SIGTERM: "stopped by SIGTERM",
		syscall.SIGHUP:  "stopped by signal hangup",
	} {
		if got := (Cause{sig}).Error(); got != want {
			t.Errorf("Cause{%v} = %q, want %q", sig, got, want)
		}
	}
}
