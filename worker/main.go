// Command worker manages pinned ComfyUI versions, realizes them onto disk
// and serves them as a RunPod serverless worker. This package only wires:
// every behaviour lives in pkg/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signalContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// signalCause is why the context of a command ended: a signal.
type signalCause struct{ sig syscall.Signal }

func (c signalCause) Error() string { return "interrupted by " + c.sig.String() }

// signalContext is signal.NotifyContext that remembers which signal came,
// so the exit code can say it (130 for Ctrl+C, as shells do).
func signalContext(parent context.Context, sigs ...os.Signal) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			if sig, ok := s.(syscall.Signal); ok {
				cancel(signalCause{sig})
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
