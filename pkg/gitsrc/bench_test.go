package gitsrc

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// benchRepo publishes a repository whose ref advertisement is the size of a
// busy project's: 20 branches and 300 tags over 300 commits.
func benchRepo(b *testing.B, srv *gittest.Server, path string) string {
	b.Helper()
	r := gittest.NewRepo(b)
	shas := r.Commits(300)
	refs := map[string]string{}
	for i := 0; i < 300; i++ {
		refs[fmt.Sprintf("refs/tags/v0.%d.0", i)] = shas[i]
	}
	for i := 0; i < 20; i++ {
		refs[fmt.Sprintf("refs/heads/branch-%d", i)] = shas[i*10]
	}
	r.SetRefs(refs)
	return srv.Add(path, r)
}

// BenchmarkListRefs compares one listing through go-git with the git CLI's
// `git ls-remote` (the original tool's method) against the same server, so
// the two figures are comparable within one run.
func BenchmarkListRefs(b *testing.B) {
	srv := gittest.NewServer(b)
	u := benchRepo(b, srv, "github.com/owner/bench")
	c := NewClient(Options{})
	ctx := context.Background()

	b.Run("go-git", func(b *testing.B) {
		for b.Loop() {
			refs, err := c.ListRefs(ctx, u)
			if err != nil || len(refs.Tags) != 300 {
				b.Fatalf("ListRefs: %d tags, %v", len(refs.Tags), err)
			}
		}
	})
	b.Run("git-ls-remote-cli", func(b *testing.B) {
		git := gittest.GitPath(b)
		env := gittest.Environ()
		dir := b.TempDir()
		for b.Loop() {
			cmd := exec.Command(git, "ls-remote", u)
			cmd.Env, cmd.Dir = env, dir
			if out, err := cmd.Output(); err != nil || len(out) == 0 {
				b.Fatalf("git ls-remote: %v", err)
			}
		}
	})
}

// BenchmarkResolveMany resolves 20 repositories (a version's custom nodes)
// one after another and all at once.
func BenchmarkResolveMany(b *testing.B) {
	const n = 20
	srv := gittest.NewServer(b)
	urls := make([]string, n)
	for i := range urls {
		r := gittest.NewRepo(b)
		r.Commit("init", map[string]string{"f": fmt.Sprint(i)})
		urls[i] = srv.Add(fmt.Sprintf("github.com/owner/node-%d", i), r)
	}
	c := NewClient(Options{})
	ctx := context.Background()

	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			for _, u := range urls {
				if _, err := c.Resolve(ctx, u, "main"); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("concurrent", func(b *testing.B) {
		for b.Loop() {
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i, u := range urls {
				wg.Go(func() { _, errs[i] = c.Resolve(ctx, u, "main") })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
