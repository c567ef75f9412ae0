// Package ctxwait waits the way every retry loop and poller here needs:
// for a duration, or until the context ends, whichever comes first.
package ctxwait

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends; it returns ctx's error in that case
// and nil when the whole wait passed. d <= 0 only checks ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
