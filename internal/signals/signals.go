// Package signals turns the signals that stop a command into a context
// that remembers which one came, and into the exit code a shell expects
// (128 + the signal's number: 130 for Ctrl+C, 143 for SIGTERM).
package signals

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// Cause is why a context from Context ended.
type Cause struct{ Signal syscall.Signal }

// Error names the signal as a user knows it: "interrupted (Ctrl+C, SIGINT)",
// "stopped by SIGTERM".
func (c Cause) Error() string {
	switch c.Signal {
	case syscall.SIGINT:
		return "interrupted (Ctrl+C, SIGINT)"
	case syscall.SIGTERM:
		return "stopped by SIGTERM"
	}
	return "stopped by signal " + c.Signal.String()
}

// Context is signal.NotifyContext that records the signal as the
// context's cause. stop releases the signals and cancels the context.
func Context(parent context.Context, sigs ...os.Signal) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			if sig, ok := s.(syscall.Signal); ok {
				cancel(Cause{sig})
			} else {
				cancel(nil)
			}
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// ExitCode is 128 + the signal that ended ctx, and ok when one did. A
// command that a SIGTERM asked to stop and that stopped cleanly (err nil)
// has not failed: ok is false, and its own exit code stands.
func ExitCode(ctx context.Context, err error) (code int, ok bool) {
	var c Cause
	if !errors.As(context.Cause(ctx), &c) || (err == nil && c.Signal == syscall.SIGTERM) {
		return 0, false
	}
	return 128 + int(c.Signal), true
}
