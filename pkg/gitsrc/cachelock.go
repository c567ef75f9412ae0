package gitsrc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	"github.com/rs/zerolog"
)

// lockPoll is how often a waiter retries a held lock.
const lockPoll = 50 * time.Millisecond

// lockFile takes an exclusive lock on path (created if missing), waiting for
// other holders, in this process or another, until ctx is done. The kernel
// drops the lock when its holder dies, so a killed fetch never wedges the
// cache. The lock file itself is left in place: removing it would let two
// processes lock two different files of the same name.
func lockFile(ctx context.Context, path string, log zerolog.Logger, what string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	fl := flock.New(path)
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		start := time.Now()
		log.Info().Str("repo", what).Msg("waiting for another fetch of this repository to finish")
		ok, err = fl.TryLockContext(ctx, lockPoll)
		if err != nil || !ok {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("wait for lock %s: %w", path, err)
		}
		log.Debug().Str("repo", what).Int64("waited_ms", time.Since(start).Milliseconds()).Msg("lock acquired")
	}
	return func() { _ = fl.Unlock() }, nil
}
