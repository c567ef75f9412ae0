package gitsrc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// TestResolveAbbreviationBehindTheTips: with a cache directory, an
// abbreviated commit that no ref points at is expanded from the history
// (fetched into the cache, where realize finds it); without one it is
// refused as before. Prefixes of no commit, and of an annotated tag
// object, are still not found.
func TestResolveAbbreviationBehindTheTips(t *testing.T) {
	t.Parallel()
	r := gittest.NewRepoWithBranch(t, "main")
	old := r.Commit("old", map[string]string{"a.txt": "1\n"})
	r.Commit("middle", map[string]string{"a.txt": "2\n"})
	tagObj := r.AnnotatedTag("v1", "release")
	r.Commit("tip", map[string]string{"a.txt": "3\n"})
	srv := gittest.NewServer(t)
	for _, u := range []string{srv.Add("github.com/o/abbrev", r), r.FileURL()} {
		var nf *RefNotFoundError
		if _, err := NewClient(Options{}).Resolve(context.Background(), u, old[:10]); !errors.As(err, &nf) || !nf.Abbrev {
			t.Fatalf("%s without a cache: %v, want an abbreviation error", u, err)
		}
		cache := t.TempDir()
		c := NewClient(Options{CacheDir: cache})
		got, err := c.Resolve(context.Background(), u, strings.ToUpper(old[:8]))
		if err != nil || got != old {
			t.Fatalf("%s: Resolve(%s) = %q, %v; want %s", u, old[:8], got, err, old)
		}
		// The history is in the cache: realize's fetch of it costs nothing.
		res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: u, Commit: old})
		if err != nil || res.Path != PathCached {
			t.Errorf("%s: fetch after expanding: %+v, %v; want it cached", u, res, err)
		}
		for _, missing := range []string{"0000000000", tagObj[:10]} {
			if _, err := c.Resolve(context.Background(), u, missing); !errors.As(err, &nf) {
				t.Errorf("%s: Resolve(%s) error = %v, want not found", u, missing, err)
			}
		}
	}
}
