package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// lockPoll is how often a waiter retries the cache lock.
const lockPoll = 250 * time.Millisecond

// LockCache takes the cache-wide lock: shared by realizes, exclusive for a
// gc, so a gc never removes what a realize is about to use. waiting is
// called once when another holder makes it wait. The kernel drops the lock
// when its holder dies.
func (l Layout) LockCache(ctx context.Context, exclusive bool, waiting func()) (unlock func(), err error) {
	if err := os.MkdirAll(l.Locks(), 0o755); err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	fl := flock.New(filepath.Join(l.Locks(), "gc.lock"), flock.SetPermissions(0o644))
	try, wait := fl.TryRLock, fl.TryRLockContext
	if exclusive {
		try, wait = fl.TryLock, fl.TryLockContext
	}
	ok, err := try()
	if err == nil && !ok {
		if waiting != nil {
			waiting()
		}
		ok, err = wait(ctx, lockPoll)
	}
	if err != nil || !ok {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	return func() { _ = fl.Unlock() }, nil
}
