package output

import (
	"context"
	"errors"
	"sync"
)

// uploadAll runs upload for each of n files, at most parallel at once, and
// reports which succeeded. The first failure cancels the others (one failed
// file fails the job, so finishing the rest would only cost time) and is
// the error returned, preferred over the cancellations it caused.
func uploadAll(ctx context.Context, n, parallel int, upload func(ctx context.Context, i int) error) ([]bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make([]bool, n)
	errs := make([]error, n)
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			if errs[i] = upload(ctx, i); errs[i] != nil {
				cancel()
			} else {
				done[i] = true
			}
		})
	}
	wg.Wait()
	return done, firstError(errs)
}

// firstError prefers a real failure over the cancellations it caused.
func firstError(errs []error) error {
	var cancelled error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, context.Canceled) && cancelled == nil {
			cancelled = err
			continue
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return cancelled
}
