package cache

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLockCache(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	ctx := context.Background()
	r1, err := l.LockCache(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Realizes share the lock.
	waited := false
	r2, err := l.LockCache(ctx, false, func() { waited = true })
	if err != nil || waited {
		t.Fatalf("second shared lock: %v, waited %v", err, waited)
	}
	// A gc waits for both, and gives up with its context.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := l.LockCache(short, true, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("exclusive lock while shared: %v, waited %v", err, waited)
	}
	r1()
	r2()
	gc, err := l.LockCache(ctx, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A realize waits for the gc.
	done := make(chan error, 1)
	go func() {
		unlock, err := l.LockCache(ctx, false, nil)
		if err == nil {
			unlock()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("shared lock during gc: %v", err)
	case <-time.After(400 * time.Millisecond):
	}
	gc()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
