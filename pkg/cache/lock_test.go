package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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

// TestLocksOff: with Off every lock is granted at once, even one another
// holder has (as on two hosts whose locks do not reach each other), no
// lock file is made, and an ended context is still an error.
func TestLocksOff(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.lock")
	on, off := Locks{}, Locks{Off: true}
	ctx := context.Background()
	held, err := on.Lock(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held()
	if _, ok, err := on.TryLock(path); ok || err != nil {
		t.Fatalf("TryLock with locks on while held: ok %v, %v", ok, err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for name, take := range map[string]func() (func(), error){
		"Lock":  func() (func(), error) { return off.Lock(short, path, func() { t.Error("waited") }) },
		"RLock": func() (func(), error) { return off.RLock(short, path, func() { t.Error("waited") }) },
		"TryLock": func() (func(), error) {
			u, ok, err := off.TryLock(path)
			if !ok && err == nil {
				err = errors.New("not granted")
			}
			return u, err
		},
	} {
		unlock, err := take()
		if err != nil {
			t.Fatalf("%s with locks off: %v", name, err)
		}
		unlock()
	}
	fresh := filepath.Join(dir, "never.lock")
	unlock, err := off.Lock(ctx, fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("locks off made a lock file: %v", err)
	}
	ended, stop := context.WithCancel(ctx)
	stop()
	if _, err := off.Lock(ended, fresh, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with an ended context = %v", err)
	}
}
