package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/runpod-comfy/worker/internal/units"
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
	if err := st.checkSpace(reqs); err != nil {
		return make([]Blob, len(reqs)), err
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

// freeSpace is the space left for new files in dir's file system; tests
// replace it.
var freeSpace = diskFree

// checkSpace fails before any download when the models of known size that
// are not in the store already cannot fit: a realize of a large version
// then stops at once, saying how much is missing, instead of after
// hundreds of gigabytes with "no space left on device". Models of unknown
// size are not counted (their size is learned on first download). On a
// network volume the free space shown may exceed the volume's quota.
func (st *Store) checkSpace(reqs []Request) error {
	var need int64
	for _, r := range reqs {
		if r.Size <= 0 {
			continue
		}
		if _, ok, _ := st.Lookup(r); !ok {
			need += r.Size
		}
	}
	if need == 0 {
		return nil
	}
	dir := st.dir
	for !exists(dir) && filepath.Dir(dir) != dir {
		dir = filepath.Dir(dir) // the store is made on the first fetch
	}
	free, err := freeSpace(dir)
	if err != nil || free >= need {
		return nil // not knowing is no reason to refuse
	}
	return fmt.Errorf("the models to download need %s, and %s is free where the model cache is (%s): free some space (see `worker delete`) or use a larger volume",
		units.Bytes(need), units.Bytes(free), dir)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
