package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// bigRepo is a repository whose pack is a few MB of incompressible data,
// so a transfer can be cut in the middle.
func bigRepo(t testing.TB) (*gittest.Repo, string) {
	t.Helper()
	r := gittest.NewRepo(t)
	rng := rand.New(rand.NewPCG(1, 2))
	files := map[string]string{}
	for i := range 8 {
		b := make([]byte, 256<<10)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		files[fmt.Sprintf("blob/%d.bin", i)] = string(b)
	}
	return r, r.Commit("big", files)
}

// staller sits in front of a gittest server (as its Intercept) and, while
// armed, forwards an upload-pack request to backend but passes on only
// half of the answer, then hangs until the client goes away: a transfer
// cut mid-pack. started is closed when the half has been sent.
type staller struct {
	backend string
	client  *http.Client
	armed   atomic.Bool
	once    sync.Once
	started chan struct{}
	// delay, when set, holds every upload-pack request that long first,
	// then lets the server answer it normally.
	delay time.Duration
}

func newStaller(t testing.TB, backend string) *staller {
	s := &staller{backend: backend, client: &http.Client{Transport: &http.Transport{}}, started: make(chan struct{})}
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

func (s *staller) intercept(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
		return false
	}
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
		}
		return false
	}
	if !s.armed.Load() {
		return false
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, s.backend+r.URL.Path, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return true
	}
	req.Header = r.Header.Clone()
	req.ContentLength = r.ContentLength // CGI refuses chunked bodies
	resp, err := s.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return true
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		http.Error(w, string(body), resp.StatusCode)
		return true
	}
	for k, v := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	s.once.Do(func() { close(s.started) })
	<-r.Context().Done()
	return true
}

// stallServer publishes r under path on a backend and on a front server
// whose upload-pack answers the returned staller controls.
func stallServer(t testing.TB, path string, r *gittest.Repo) (*staller, *gittest.Server, string) {
	backend := gittest.NewServer(t)
	backend.Add(path, r)
	s := newStaller(t, backend.URL)
	front := gittest.NewServerWithOptions(t, gittest.ServerOptions{Intercept: s.intercept})
	return s, front, front.Add(path, r)
}

func leftovers(t *testing.T, repoDir string) []string {
	t.Helper()
	var found []string
	entries, _ := os.ReadDir(filepath.Join(repoDir, "objects", "pack"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tmp_") || strings.HasPrefix(e.Name(), ".") {
			found = append(found, e.Name())
		}
	}
	siblings, _ := os.ReadDir(filepath.Dir(repoDir))
	for _, e := range siblings {
		if strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".old-") {
			found = append(found, e.Name())
		}
	}
	return found
}

// A fetch cancelled in the middle of the pack fails with the context's
// error and leaves a repository the next fetch completes.
func TestFetchCancelledMidTransfer(t *testing.T) {
	t.Parallel()
	r, sha := bigRepo(t)
	stall, _, u := stallServer(t, "github.com/owner/big", r)
	stall.armed.Store(true)
	cache := t.TempDir()
	c := NewClient(Options{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := RepoDir(cache, u)
	midPack := make(chan bool, 1)
	go func() {
		<-stall.started
		// Cancel once part of the pack is on disk, as a kill would find it.
		midPack <- waitFor(5*time.Second, func() bool { return len(partialPacks(dir)) > 0 })
		cancel()
	}()
	start := time.Now()
	_, err := c.Fetch(ctx, FetchRequest{CacheDir: cache, URL: u, Commit: sha})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), u) {
		t.Fatalf("cancelled fetch: %v, want context.Canceled naming the URL", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancelled fetch took %v", d)
	}
	if complete, _ := present(dir, plumbing.NewHash(sha)); complete {
		t.Fatal("commit reported present after a cut transfer")
	}
	if !<-midPack {
		t.Fatal("no partial pack before the cut: the test did not cut mid-pack")
	}
	// The fetch's private repository went with it.
	if l := leftovers(t, dir); len(l) > 0 {
		t.Fatalf("leftovers after the cut: %v", l)
	}

	stall.armed.Store(false)
	res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: u, Commit: sha})
	if err != nil || res.Path != PathSHA {
		t.Fatalf("fetch after the cut = %+v, %v", res, err)
	}
	assertCommitComplete(t, dir, sha)
	if l := leftovers(t, dir); len(l) > 0 {
		t.Fatalf("leftovers after recovery: %v", l)
	}
}

// A repository damaged on disk is rebuilt next to the old one and swapped
// in, instead of failing every later fetch.
func TestFetchRebuildsCorruptRepo(t *testing.T) {
	t.Parallel()
	corruptions := []struct {
		name string
		// again is how the damaged commit comes back; rebuilt says whether
		// the repository must be re-created.
		again   FetchPath
		rebuilt bool
		apply   func(t *testing.T, dir string)
	}{
		{"garbage config", PathSHA, true, func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "config"), "[[[ not a config")
		}},
		{"truncated pack", PathSHA, true, func(t *testing.T, dir string) {
			packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
			for _, p := range packs {
				if err := os.Truncate(p, 100); err != nil {
					t.Fatal(err)
				}
			}
		}},
		// The objects are intact: the pin is rewritten without a fetch.
		{"empty pin ref", PathCached, false, func(t *testing.T, dir string) {
			pins, _ := filepath.Glob(filepath.Join(dir, "refs", "pins", "*"))
			for _, p := range pins {
				writeFile(t, p, "")
			}
		}},
		{"objects directory gone", PathSHA, true, func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "objects")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	h := newHistory(t, gittest.ServerOptions{})
	for _, cc := range corruptions {
		t.Run(cc.name, func(t *testing.T) {
			cache := t.TempDir()
			logs, log := logged(0)
			c := NewClient(Options{Logger: log})
			res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: h.url, Commit: h.main[1]})
			if err != nil {
				t.Fatal(err)
			}
			cc.apply(t, res.RepoDir)
			for i, sha := range []string{h.main[1], h.tip()} {
				want := cc.again
				if i == 1 {
					want = PathSHA
				}
				got, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: h.url, Commit: sha})
				if err != nil || got.Path != want {
					t.Fatalf("fetch %s into the damaged cache = %+v, %v\n%s", sha, got, err, logs)
				}
				assertCommitComplete(t, res.RepoDir, sha)
			}
			if strings.Contains(logs.String(), "re-creating it") != cc.rebuilt {
				t.Fatalf("rebuild warning logged: %v, want %v:\n%s", !cc.rebuilt, cc.rebuilt, logs)
			}
			if l := leftovers(t, res.RepoDir); len(l) > 0 {
				t.Fatalf("leftovers after the rebuild: %v", l)
			}
		})
	}
}

// partialPacks lists the non-empty temp packs go-git is writing or left,
// in the private repositories fetches fill next to repoDir.
func partialPacks(repoDir string) []string {
	var found []string
	private, _ := filepath.Glob(repoDir + ".tmp-*")
	for _, dir := range private {
		entries, _ := os.ReadDir(filepath.Join(dir, "objects", "pack"))
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "tmp_pack_") && fi.Size() > 0 {
				found = append(found, e.Name())
			}
		}
	}
	return found
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
