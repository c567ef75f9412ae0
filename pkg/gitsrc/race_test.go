package gitsrc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestHalfWrittenRefIsNoDamage: a ref being written on another host (an
// empty temp file under refs/, as earlier releases wrote them) does not
// make a fetch take the repository for damaged and replace it.
func TestHalfWrittenRefIsNoDamage(t *testing.T) {
	h := newHistory(t, gittest.ServerOptions{})
	cacheDir := t.TempDir()
	logs, log := logged(0)
	c := NewClient(Options{Logger: log})
	res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cacheDir, URL: h.url, Commit: h.main[1]})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(res.RepoDir)
	writeFile(t, filepath.Join(res.RepoDir, "refs", "pins", "."+h.tip()+".tmp-123"), "")
	if _, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cacheDir, URL: h.url, Commit: h.tip()}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(res.RepoDir)
	if !os.SameFile(before, after) || strings.Contains(logs.String(), "re-creating") {
		t.Fatalf("the repository was replaced:\n%s", logs)
	}
	assertCommitComplete(t, res.RepoDir, h.tip())
	assertCommitComplete(t, res.RepoDir, h.main[1])
	// This release writes a ref's temp file outside refs/.
	if tmps, _ := filepath.Glob(filepath.Join(res.RepoDir, ".*.tmp-*")); len(tmps) != 0 {
		t.Errorf("temp files left at the repository's top: %v", tmps)
	}
}
