package models

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// FetchAll fetches reqs with at most jobs downloads at a time (jobs < 1
// means 4). It does not stop at the first failure: the downloads already
// running are worth finishing (they stay in the cache for the next run)
// and the user learns every broken source at once. blobs[i] belongs to
// reqs[i] and is zero where that request failed; the error joins one
// error per failed request, each naming its model. Cancelling ctx stops
// everything.
func (st *Store) FetchAll(ctx context.Context, reqs []Request, jobs int) ([]Blob, error) {
	if jobs < 1 {
		jobs = 4
	}
	blobs := make([]Blob, len(reqs))
	errs := make([]error, len(reqs))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, req := range reqs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("model %s: not started: %w", itemOr(req.Item, req.Source), context.Cause(ctx))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			blobs[i], errs[i] = st.Fetch(ctx, req)
		}()
	}
	wg.Wait()
	return blobs, errors.Join(errs...)
}
