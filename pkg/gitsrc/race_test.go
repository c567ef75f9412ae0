package gitsrc

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/pkg/cache"
)

// TestHostsRaceOneCache: clients whose locks do not reach each other (hosts
// sharing a volume, here with locks off) fetch and export commits of one
// repository into one cache at the same moment. Every one succeeds with the
// right tree: the loser of a race uses the winner's objects, and no reader
// ever sees a half-written repository.
func TestHostsRaceOneCache(t *testing.T) {
	h := newHistory(t, gittest.ServerOptions{})
	for _, tc := range []struct {
		hosts, rounds int
		commits       []string // each host takes the next one, round robin
	}{
		{hosts: 2, rounds: 6, commits: []string{h.tip()}},
		{hosts: 4, rounds: 4, commits: []string{h.tip(), h.tagged, h.devTip}},
	} {
		t.Run(fmt.Sprintf("%d hosts", tc.hosts), func(t *testing.T) {
			want := map[string]map[string]node{}
			for _, c := range tc.commits {
				want[c] = archiveNodes(t, h.repo, c)
			}
			for round := range tc.rounds {
				cacheDir := filepath.Join(t.TempDir(), "git")
				dests := t.TempDir()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				errs := make([]error, tc.hosts)
				var wg sync.WaitGroup
				for i := range tc.hosts {
					c := NewClient(Options{Locks: cache.Locks{Off: true}})
					commit := tc.commits[i%len(tc.commits)]
					wg.Go(func() {
						_, errs[i] = c.Materialize(ctx, FetchRequest{CacheDir: cacheDir, URL: h.url, Commit: commit},
							filepath.Join(dests, fmt.Sprint(i)), ExportOptions{NoSync: true})
					})
				}
				wg.Wait()
				cancel()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("round %d, host %d: %v", round, i, err)
					}
					commit := tc.commits[i%len(tc.commits)]
					if d := diffNodes(diskNodes(t, filepath.Join(dests, fmt.Sprint(i))), want[commit]); d != "" {
						t.Fatalf("round %d, host %d: tree differs from git archive: %s", round, i, d)
					}
				}
				// What the race left behind is a sound cache: a later
				// fetch of every commit needs no network.
				c := NewClient(Options{Offline: true})
				for _, commit := range tc.commits {
					if res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cacheDir, URL: h.url, Commit: commit}); err != nil || res.Path != PathCached {
						t.Fatalf("round %d: after the race, %s is not cached: %v", round, commit, err)
					}
				}
			}
		})
	}
}
