package gitsrc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// fetchBenchRepos publishes n repositories the size of a typical custom
// node: a few hundred files in nested folders and some history.
func fetchBenchRepos(b *testing.B, srv *gittest.Server, n int) (urls, tips []string) {
	b.Helper()
	for i := range n {
		r := gittest.NewRepo(b)
		files := map[string]string{}
		for f := range 300 {
			files[fmt.Sprintf("pkg%d/sub%d/file_%d.py", f%10, f%3, f)] = strings.Repeat(fmt.Sprintf("# repo %d file %d\nx = %d\n", i, f, f), 40)
		}
		r.Commit("files", files)
		r.Commits(30)
		urls = append(urls, srv.Add(fmt.Sprintf("github.com/owner/node-%d", i), r))
		tips = append(tips, r.Head())
	}
	return urls, tips
}

// BenchmarkFetchExport builds 10 custom-node trees from scratch (empty
// cache) through go-git, all at once, against the baseline of the
// original tool's method, `git clone --depth 1` with the CLI one repository
// after another, on the same server in the same run.
func BenchmarkFetchExport(b *testing.B) {
	const n = 10
	srv := gittest.NewServer(b)
	urls, tips := fetchBenchRepos(b, srv, n)
	ctx := context.Background()
	c := NewClient(Options{})
	root := b.TempDir()
	fresh := func(b *testing.B) string {
		b.StopTimer()
		dir, err := os.MkdirTemp(root, "iter-")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		return dir
	}
	drop := func(b *testing.B, dir string) {
		b.StopTimer()
		_ = os.RemoveAll(dir)
		b.StartTimer()
	}
	materialize := func(b *testing.B, concurrent bool, opts ExportOptions) {
		for b.Loop() {
			dir := fresh(b)
			errs := make([]error, n)
			one := func(i int) {
				_, errs[i] = c.Materialize(ctx, FetchRequest{CacheDir: filepath.Join(dir, "cache"), URL: urls[i], Commit: tips[i]},
					filepath.Join(dir, "custom_nodes", fmt.Sprint(i)), opts)
			}
			var wg sync.WaitGroup
			for i := range n {
				if concurrent {
					wg.Go(func() { one(i) })
				} else {
					one(i)
				}
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			drop(b, dir)
		}
	}
	clone := func(b *testing.B, concurrent bool) {
		git, env := gittest.GitPath(b), gittest.Environ()
		for b.Loop() {
			dir := fresh(b)
			errs := make([]error, n)
			one := func(i int) {
				cmd := exec.Command(git, "clone", "-q", "--depth", "1", urls[i], filepath.Join(dir, fmt.Sprint(i)))
				cmd.Env, cmd.Dir = env, dir
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("git clone: %v: %s", err, out)
				}
			}
			var wg sync.WaitGroup
			for i := range n {
				if concurrent {
					wg.Go(func() { one(i) })
				} else {
					one(i)
				}
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			drop(b, dir)
		}
	}

	b.Run("go-git-concurrent", func(b *testing.B) { materialize(b, true, ExportOptions{}) })
	b.Run("go-git-concurrent-nosync", func(b *testing.B) { materialize(b, true, ExportOptions{NoSync: true}) })
	b.Run("go-git-serial", func(b *testing.B) { materialize(b, false, ExportOptions{}) })
	b.Run("git-clone-depth1-cli-serial", func(b *testing.B) { clone(b, false) })
	b.Run("git-clone-depth1-cli-concurrent", func(b *testing.B) { clone(b, true) })
}
