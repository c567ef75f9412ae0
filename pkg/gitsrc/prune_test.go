package gitsrc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/runpod-comfy/worker/internal/gittest"
)

func TestPrune(t *testing.T) {
	t.Parallel()
	r := gittest.NewRepo(t)
	commit := r.Commit("one", map[string]string{"a.txt": "a\n"})
	srv := gittest.NewServer(t)
	urls := map[string]string{}
	for _, name := range []string{"kept", "unused", "recent", "busy"} {
		urls[name] = srv.Add("github.com/owner/"+name, r)
	}
	cache := t.TempDir()
	c := NewClient(Options{})
	old := time.Now().Add(-48 * time.Hour)
	dirs := map[string]string{}
	for name, u := range urls {
		res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: u, Commit: commit, Ref: "main"})
		if err != nil {
			t.Fatal(err)
		}
		dirs[name] = res.RepoDir
		if name != "recent" {
			for _, p := range []string{res.RepoDir, filepath.Join(res.RepoDir, "objects", "pack"), filepath.Join(res.RepoDir, "refs", "pins"), filepath.Join(res.RepoDir, "shallow")} {
				os.Chtimes(p, old, old)
			}
		}
	}
	lk := flock.New(dirs["busy"] + ".lock")
	if ok, err := lk.TryLock(); err != nil || !ok {
		t.Fatal("lock", err)
	}
	defer lk.Unlock()
	keyOf := func(name string) string {
		k, err := RepoKey(urls[name])
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keep := map[string]bool{keyOf("kept"): true}

	rep, err := Prune(context.Background(), cache, keep, PruneOptions{MinAge: 24 * time.Hour, DryRun: true})
	if err != nil || len(rep.Removed) != 2 || rep.Kept != 1 || rep.Recent != 1 {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	for _, d := range dirs {
		if !isDir(d) {
			t.Fatalf("dry run removed %s", d)
		}
	}
	rep, err = Prune(context.Background(), cache, keep, PruneOptions{MinAge: 24 * time.Hour})
	if err != nil || len(rep.Removed) != 1 || rep.Removed[0].Key != keyOf("unused") || rep.Removed[0].Size == 0 || rep.Busy != 1 {
		t.Fatalf("prune: %+v, %v", rep, err)
	}
	for name, d := range dirs {
		if isDir(d) == (name == "unused") {
			t.Errorf("%s: present after prune = %v", name, isDir(d))
		}
	}
	// A pruned repository is fetched again when needed.
	if _, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: urls["unused"], Commit: commit, Ref: "main"}); err != nil {
		t.Fatal(err)
	}
	// A cache that was never made is nothing to prune.
	if rep, err := Prune(context.Background(), filepath.Join(cache, "none"), nil, PruneOptions{}); err != nil || len(rep.Removed) != 0 {
		t.Errorf("missing cache: %+v, %v", rep, err)
	}
}

// TestPruneWhileFetching: a prune that meets a fetch's private repository
// neither walks into it (it may vanish under the walk) nor removes it.
func TestPruneWhileFetching(t *testing.T) {
	cacheDir := t.TempDir()
	private := filepath.Join(cacheDir, "github.com", "o", "r.git.tmp-0123456789abcdef")
	os.MkdirAll(filepath.Join(private, "objects", "pack"), 0o755)
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(private, old, old)
	rep, err := Prune(context.Background(), cacheDir, nil, PruneOptions{})
	if err != nil || len(rep.Removed) != 0 {
		t.Fatalf("prune: %+v, %v", rep, err)
	}
	if !isDir(private) {
		t.Fatal("prune removed a fetch's private repository")
	}
	if privateName("r.git") || !privateName("r.git.old-1") {
		t.Error("privateName")
	}
}
