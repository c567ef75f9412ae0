package gitsrc

import (
	"context"
	"fmt"
	"time"
)

// lockRepo takes the fetch lock of the cache repository dir (dir+".lock"),
// waiting for other holders on this host until ctx is done. It only saves
// work: across hosts the cache protocol (fetch privately, publish by
// rename) needs no lock.
func (c *Client) lockRepo(ctx context.Context, dir, what string) (unlock func(), err error) {
	start := time.Now()
	waited := false
	unlock, err = c.locks.Lock(ctx, dir+".lock", func() {
		waited = true
		c.log.Info().Str("repo", what).Msg("waiting for another fetch of this repository to finish")
	})
	if err != nil {
		return nil, fmt.Errorf("wait for the lock of %s: %w", dir, err)
	}
	if waited {
		c.log.Debug().Str("repo", what).Int64("waited_ms", time.Since(start).Milliseconds()).Msg("lock acquired")
	}
	return unlock, nil
}
