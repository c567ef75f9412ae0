package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// DefaultLockPoll is how often a waiter retries a held lock.
const DefaultLockPoll = 250 * time.Millisecond

// Locks takes the file locks that make processes on one host do shared
// work once: one fetches a repository or downloads a model while the
// others wait and then use it. They are an optimisation only. Nothing
// promises that a lock reaches another host sharing the volume, so every
// shared write is correct without them (see docs/operations.md); Off turns
// every lock into a no-op, which is how tests race two realizes in one
// process as two hosts would race them. The zero value locks.
type Locks struct {
	// Off makes every lock succeed at once without locking anything.
	Off bool
	// Poll is how often a waiter retries; DefaultLockPoll when zero.
	Poll time.Duration
}

func (l Locks) poll() time.Duration {
	if l.Poll > 0 {
		return l.Poll
	}
	return DefaultLockPoll
}

// Lock takes an exclusive lock on path (created if missing), waiting for
// other holders until ctx ends; waiting, when not nil, is called once when
// it has to wait. The kernel drops the lock when its holder dies, so a
// killed process never wedges anyone. The file itself stays: removing it
// would let two processes lock two different files of the same name.
func (l Locks) Lock(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	return l.take(ctx, path, true, waiting)
}

// RLock is Lock for a shared lock: many holders, none exclusive.
func (l Locks) RLock(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	return l.take(ctx, path, false, waiting)
}

// TryLock takes an exclusive lock on path if it is free; ok is false when
// another process holds it.
func (l Locks) TryLock(path string) (unlock func(), ok bool, err error) {
	if l.Off {
		return func() {}, true, nil
	}
	fl, err := open(path)
	if err != nil {
		return nil, false, err
	}
	ok, err = fl.TryLock()
	if err != nil || !ok {
		return nil, false, err
	}
	return func() { _ = fl.Unlock() }, true, nil
}

func (l Locks) take(ctx context.Context, path string, exclusive bool, waiting func()) (func(), error) {
	if l.Off {
		return func() {}, ctx.Err()
	}
	fl, err := open(path)
	if err != nil {
		return nil, err
	}
	try, wait := fl.TryRLock, fl.TryRLockContext
	if exclusive {
		try, wait = fl.TryLock, fl.TryLockContext
	}
	ok, err := try()
	if err == nil && !ok {
		if waiting != nil {
			waiting()
		}
		ok, err = wait(ctx, l.poll())
	}
	if err != nil || !ok {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = fl.Unlock() }, nil
}

func open(path string) (*flock.Flock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return flock.New(path, flock.SetPermissions(0o644)), nil
}

// LockCache takes the cache-wide lock: shared by realizes, exclusive for a
// gc, so on one host a gc does not run while a realize does. waiting is
// called once when another holder makes it wait. Across hosts gc relies on
// leases instead (see Lease).
func (l Layout) LockCache(ctx context.Context, exclusive bool, waiting func()) (unlock func(), err error) {
	path := filepath.Join(l.Locks(), "gc.lock")
	if exclusive {
		unlock, err = l.Lockers.Lock(ctx, path, waiting)
	} else {
		unlock, err = l.Lockers.RLock(ctx, path, waiting)
	}
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	return unlock, err
}
