package gitsrc

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// history is a repository with a main branch of several commits, a tag, and
// a side branch, published over smart HTTP.
type history struct {
	repo    *gittest.Repo
	srv     *gittest.Server
	url     string
	main    []string // oldest first; the last is the tip of main
	tagged  string   // tip of tag v1 (an older commit of main)
	annot   string   // commit of the annotated tag v2.0
	devOnly string   // on branch dev only, not its tip
	devTip  string
}

func newHistory(t *testing.T, opts gittest.ServerOptions) *history {
	t.Helper()
	h := &history{repo: gittest.NewRepo(t), srv: gittest.NewServerWithOptions(t, opts)}
	r := h.repo
	h.main = append(h.main, r.Commit("one", map[string]string{"README.md": "one\n", "src/a.py": "a = 1\n"}))
	h.tagged = r.Commit("two", map[string]string{"src/b.py": "b = 2\n"})
	r.Tag("v1")
	h.main = append(h.main, h.tagged)
	r.Branch("dev")
	for _, n := range []string{"three", "four", "five"} {
		h.main = append(h.main, r.Commit(n, map[string]string{"n.txt": n + "\n"}))
		if n == "four" {
			r.AnnotatedTag("v2.0", "release 2.0")
			h.annot = r.Head()
		}
	}
	r.Checkout("dev")
	h.devOnly = r.Commit("dev one", map[string]string{"dev.txt": "1\n"})
	h.devTip = r.Commit("dev two", map[string]string{"dev.txt": "2\n"})
	r.Checkout("main")
	h.url = h.srv.Add("github.com/owner/repo", r)
	return h
}

func (h *history) tip() string { return h.main[len(h.main)-1] }

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func logged(level zerolog.Level) (*logBuffer, zerolog.Logger) {
	buf := &logBuffer{}
	return buf, zerolog.New(buf).Level(level)
}

// commitsIn counts the distinct commits a cache repository holds (a pack may
// repeat commits an older one has).
func commitsIn(t *testing.T, dir string) int {
	t.Helper()
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	iter, err := st.IterEncodedObjects(plumbing.CommitObject)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[plumbing.Hash]bool{}
	_ = iter.ForEach(func(o plumbing.EncodedObject) error { seen[o.Hash()] = true; return nil })
	return len(seen)
}

func TestFetchBySHAIsShallow(t *testing.T) {
	t.Parallel()
	h := newHistory(t, gittest.ServerOptions{})
	cache := t.TempDir()
	logs, log := logged(zerolog.InfoLevel)
	c := NewClient(Options{Logger: log})
	want := h.main[2] // behind the tip: only a fetch by SHA gets it at depth 1

	res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: h.url, Commit: strings.ToUpper(want), Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	wantDir := filepath.Join(cache, "127.0.0.1_"+port(t, h.srv.URL), "github.com", "owner", "repo.git")
	if res.Path != PathSHA || res.Commit != want || res.RepoDir != wantDir {
		t.Fatalf("result = %+v, want path %s, commit %s, dir %s", res, PathSHA, want, wantDir)
	}
	if n := commitsIn(t, res.RepoDir); n != 1 {
		t.Fatalf("cache holds %d commits, want 1 (depth 1)", n)
	}
	// Nothing is ever fetched into the shared repository (fetches start
	// from an empty private one), so it keeps no shallow list that hosts
	// would have to rewrite.
	if shallow, err := os.ReadFile(filepath.Join(res.RepoDir, "shallow")); err == nil {
		t.Fatalf("the shared repository has a shallow file: %q", shallow)
	}
	if pin, err := os.ReadFile(filepath.Join(res.RepoDir, "refs", "pins", want)); err != nil || strings.TrimSpace(string(pin)) != want {
		t.Fatalf("pin ref = %q, %v", pin, err)
	}
	if !strings.Contains(logs.String(), `"path":"sha-depth1"`) || !strings.Contains(logs.String(), `"message":"git fetch"`) {
		t.Fatalf("log does not say which path was taken:\n%s", logs)
	}
	// The URL is keyed as written, so a ".git" suffix shares the entry and
	// a present commit costs no request at all, in a fresh client too.
	before := h.srv.Requests()
	for _, u := range []string{h.url, h.url + ".git", h.url + "/"} {
		res, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: u, Commit: want})
		if err != nil || res.Path != PathCached || res.RepoDir != wantDir {
			t.Fatalf("second fetch via %s = %+v, %v; want cached in %s", u, res, err, wantDir)
		}
	}
	if n := h.srv.Requests() - before; n != 0 {
		t.Fatalf("fetching cached commits made %d requests, want 0", n)
	}
}

func port(t *testing.T, u string) string {
	t.Helper()
	i := strings.LastIndex(u, ":")
	return u[i+1:]
}

func TestFetchFallbackPaths(t *testing.T) {
	t.Parallel()
	h := newHistory(t, gittest.ServerOptions{DisallowSHAWant: true})
	tests := []struct {
		name   string
		url    string
		commit string
		ref    string
		want   FetchPath
	}{
		{"tip of the ref", h.url, h.tip(), "main", PathRef},
		{"tip of another ref", h.url, h.devTip, "main", PathRef},
		{"tag tip with empty ref", h.url, h.tagged, "", PathRef},
		{"annotated tag", h.url, h.annot, "v2.0", PathRef},
		{"behind the tip needs deepening", h.url, h.main[2], "main", PathFull},
		{"behind HEAD", h.url, h.main[0], "", PathFull},
		{"on another branch only", h.url, h.devOnly, "main", PathFull},
		{"ref that vanished", h.url, h.main[0], "gone", PathFull},
		{"file url tip", h.repo.FileURL(), h.tip(), "main", PathRef},
		{"file url behind", h.repo.FileURL(), h.main[2], "main", PathFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs, log := logged(zerolog.InfoLevel)
			res, err := NewClient(Options{Logger: log}).Fetch(context.Background(),
				FetchRequest{CacheDir: t.TempDir(), URL: tt.url, Commit: tt.commit, Ref: tt.ref})
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != tt.want {
				t.Fatalf("path = %s, want %s", res.Path, tt.want)
			}
			if !strings.Contains(logs.String(), `"path":"`+string(tt.want)+`"`) {
				t.Fatalf("log lacks the path:\n%s", logs)
			}
			assertCommitComplete(t, res.RepoDir, tt.commit)
			if _, err := os.Stat(filepath.Join(res.RepoDir, "refs", "fetch")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temporary refs left behind: %v", err)
			}
		})
	}
}

// assertCommitComplete checks the commit and its whole tree are readable
// from the cache repository, independently of Fetch's own verification.
func assertCommitComplete(t *testing.T, dir, commit string) {
	t.Helper()
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := object.GetCommit(st, plumbing.NewHash(commit))
	if err != nil {
		t.Fatalf("commit %s not in cache: %v", commit, err)
	}
	tree, err := c.Tree()
	if err != nil {
		t.Fatal(err)
	}
	err = tree.Files().ForEach(func(f *object.File) error {
		_, err := f.Contents()
		return err
	})
	if err != nil {
		t.Fatalf("tree of %s incomplete: %v", commit, err)
	}
	if pin, err := os.ReadFile(filepath.Join(dir, "refs", "pins", commit)); err != nil || strings.TrimSpace(string(pin)) != commit {
		t.Fatalf("pin ref = %q, %v", pin, err)
	}
}

// TestFetchDeepensStepByStep checks a commit behind the tip costs a partial
// history, and that later fetches into the same (shallow) cache through a
// server that refuses SHAs and one that allows them all stay complete.
func TestFetchDeepensStepByStep(t *testing.T) {
	t.Parallel()
	r := gittest.NewRepo(t)
	shas := r.Commits(1100)
	r.Git("branch", "side", shas[10])
	r.Checkout("side")
	sideOnly := r.Commit("side one", map[string]string{"side.txt": "1\n"})
	r.Commit("side two", map[string]string{"side.txt": "2\n"})
	r.Checkout("main")
	allow, refuse := gittest.NewServer(t), gittest.NewServerWithOptions(t, gittest.ServerOptions{DisallowSHAWant: true})
	allow.Add("github.com/owner/long", r)
	refuse.Add("github.com/owner/long", r)
	const u = "https://github.com/owner/long"
	via := func(s *gittest.Server) *Client {
		return NewClient(Options{Rewrites: []Rewrite{{From: "https://github.com/", To: s.URL + "/github.com/"}}})
	}
	cache := t.TempDir()
	steps := []struct {
		name      string
		c         *Client
		commit    string
		want      FetchPath
		maxCommit int // commits in the cache afterwards, at most
	}{
		{"by SHA", via(allow), shas[1090], PathSHA, 1},
		{"descendant of a shallow pin, 4 behind", via(refuse), shas[1095], PathFull, 70},
		{"600 behind", via(refuse), shas[500], PathFull, 1050},
		// Not behind main at all: every branch, at infinite depth because
		// the cache is still shallow, so older history arrives too.
		{"on a side branch only", via(refuse), sideOnly, PathFull, 1102},
		{"cached after full history", via(refuse), shas[0], PathCached, 1102},
	}
	for _, s := range steps {
		res, err := s.c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: u, Commit: s.commit, Ref: "main"})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.Path != s.want {
			t.Fatalf("%s: path %s, want %s", s.name, res.Path, s.want)
		}
		if n := commitsIn(t, res.RepoDir); n > s.maxCommit {
			t.Fatalf("%s: cache holds %d commits, want at most %d", s.name, n, s.maxCommit)
		}
		assertCommitComplete(t, res.RepoDir, s.commit)
	}
	dir, _ := RepoDir(cache, u)
	// Full history arrived, so no commit is a shallow boundary any more.
	if data, err := os.ReadFile(filepath.Join(dir, "shallow")); err == nil && len(bytes.TrimSpace(data)) > 0 {
		t.Fatalf("shallow file still lists %q after the full history arrived", data)
	}
	for _, sha := range []string{shas[1090], shas[1095], shas[500], sideOnly, shas[0]} {
		assertCommitComplete(t, dir, sha)
	}
}

func TestFetchMissingCommit(t *testing.T) {
	t.Parallel()
	const missing = "0123456789abcdef0123456789abcdef01234567"
	for _, opts := range []gittest.ServerOptions{{}, {DisallowSHAWant: true}} {
		h := newHistory(t, opts)
		for _, u := range []string{h.url, h.repo.FileURL()} {
			_, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: t.TempDir(), URL: u, Commit: missing, Ref: "main"})
			var nf *CommitNotFoundError
			if !errors.As(err, &nf) || nf.Commit != missing {
				t.Fatalf("disallow=%v %s: err = %v, want *CommitNotFoundError", opts.DisallowSHAWant, u, err)
			}
			want := "commit " + missing + " not found in " + u + " (searched main and every branch and tag): " +
				"was it force-pushed away? pin a commit that is on a branch or tag"
			if err.Error() != want {
				t.Fatalf("error text:\n got %s\nwant %s", err, want)
			}
		}
	}
}

func TestFetchFromEmptyRepo(t *testing.T) {
	t.Parallel()
	for _, opts := range []gittest.ServerOptions{{}, {DisallowSHAWant: true}} {
		u := gittest.NewServerWithOptions(t, opts).Add("github.com/owner/empty", gittest.NewRepo(t))
		_, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: t.TempDir(), URL: u, Commit: strings.Repeat("ab", 20)})
		var nf *CommitNotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("disallow=%v: err = %v, want *CommitNotFoundError", opts.DisallowSHAWant, err)
		}
	}
}

// A commit no ref reaches any more (a force-push) is refused by SHA even by
// a permissive server, and is not on any branch: not found.
func TestFetchForcePushedCommit(t *testing.T) {
	t.Parallel()
	h := newHistory(t, gittest.ServerOptions{})
	h.repo.Checkout("dev")
	h.repo.Git("reset", "-q", "--hard", h.devOnly)
	h.repo.Checkout("main")
	_, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: t.TempDir(), URL: h.url, Commit: h.devTip, Ref: "dev"})
	var nf *CommitNotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "force-pushed") {
		t.Fatalf("err = %v, want *CommitNotFoundError", err)
	}
}

func TestFetchRequestErrors(t *testing.T) {
	t.Parallel()
	const token = "ghp_fetchsecret42"
	srv := gittest.NewServerWithOptions(t, gittest.ServerOptions{Password: token})
	r := gittest.NewRepo(t)
	sha := r.Commit("private", map[string]string{"f": "x"})
	u := srv.Add("github.com/owner/private", r)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	withUser := strings.Replace(u, "http://", "http://x-access-token:wrong-"+token+"@", 1)

	tests := []struct {
		name    string
		ctx     context.Context
		req     FetchRequest
		creds   []Credential
		wantErr error
		text    string
	}{
		{"commit is a ref name", nil, FetchRequest{URL: u, Commit: "main"}, nil, nil, `commit "main" is not a full 40-hex SHA`},
		{"short commit", nil, FetchRequest{URL: u, Commit: sha[:12]}, nil, nil, "not a full 40-hex SHA"},
		{"no cache dir", nil, FetchRequest{URL: u, Commit: sha, CacheDir: "-"}, nil, nil, "no cache directory"},
		{"bad url", nil, FetchRequest{URL: "relative/path", Commit: sha}, nil, nil, "unsupported repository URL"},
		{"no credentials", nil, FetchRequest{URL: u, Commit: sha}, nil, ErrAuth, "asks for credentials"},
		{"wrong userinfo", nil, FetchRequest{URL: withUser, Commit: sha}, nil, ErrAuth, "credentials"},
		{"token for the host", nil, FetchRequest{URL: u, Commit: sha}, []Credential{{Host: strings.TrimPrefix(srv.URL, "http://"), Token: token}}, nil, ""},
		{"missing repository", nil, FetchRequest{URL: srv.URL + "/github.com/owner/none", Commit: sha}, []Credential{{Host: strings.TrimPrefix(srv.URL, "http://"), Token: token}}, ErrRepoNotFound, "repository not found"},
		{"cancelled", cancelled, FetchRequest{URL: u, Commit: sha}, nil, context.Canceled, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			if tt.req.CacheDir == "" {
				tt.req.CacheDir = t.TempDir()
			} else if tt.req.CacheDir == "-" {
				tt.req.CacheDir = ""
			}
			logs, log := logged(zerolog.DebugLevel)
			res, err := NewClient(Options{Credentials: tt.creds, Logger: log}).Fetch(ctx, tt.req)
			if tt.text == "" {
				if err != nil || res.Path != PathSHA {
					t.Fatalf("Fetch = %+v, %v", res, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v, want it to say %q", err, tt.text)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(logs.String(), token) {
				t.Fatalf("token leaked: %v\n%s", err, logs)
			}
		})
	}
}

// Goroutines of one process fetching commits of one repository at once are
// serialised by the lock and all succeed.
func TestFetchConcurrentSameRepo(t *testing.T) {
	t.Parallel()
	h := newHistory(t, gittest.ServerOptions{})
	cache := t.TempDir()
	c := NewClient(Options{})
	commits := append(append([]string(nil), h.main...), h.devOnly, h.devTip, h.tip(), h.tip())
	errs := make([]error, len(commits))
	var wg sync.WaitGroup
	for i, sha := range commits {
		wg.Go(func() {
			_, errs[i] = c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: h.url, Commit: sha})
		})
	}
	wg.Wait()
	dir, _ := RepoDir(cache, h.url)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("fetch %s: %v", commits[i], err)
		}
		assertCommitComplete(t, dir, commits[i])
	}
}

// Offline, cached commits are served (and a missing pin repaired) without a
// request; anything else fails with ErrOffline and no request either.
func TestFetchOffline(t *testing.T) {
	t.Parallel()
	h := newHistory(t, gittest.ServerOptions{})
	cache := t.TempDir()
	if _, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: h.url, Commit: h.tip()}); err != nil {
		t.Fatal(err)
	}
	dir, _ := RepoDir(cache, h.url)
	if err := os.Remove(filepath.Join(dir, "refs", "pins", h.tip())); err != nil {
		t.Fatal(err)
	}
	before := h.srv.Requests()
	off := NewClient(Options{Offline: true})
	res, err := off.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: h.url, Commit: h.tip()})
	if err != nil || res.Path != PathCached {
		t.Fatalf("offline fetch of a cached commit = %+v, %v", res, err)
	}
	assertCommitComplete(t, dir, h.tip())

	for _, c := range []struct{ cache, commit string }{{cache, h.main[0]}, {t.TempDir(), h.tip()}} {
		_, err = off.Fetch(context.Background(), FetchRequest{CacheDir: c.cache, URL: h.url, Commit: c.commit})
		if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), "not in the git cache") {
			t.Fatalf("offline miss: %v, want ErrOffline", err)
		}
	}
	if _, err := off.ListRefs(context.Background(), h.url); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline listing: %v, want ErrOffline", err)
	}
	if n := h.srv.Requests() - before; n != 0 {
		t.Fatalf("offline client made %d requests", n)
	}
}

// A server failing every fetch is reported as such, never as a missing
// commit, which would send the user hunting for a force-push.
func TestFetchServerFailure(t *testing.T) {
	t.Parallel()
	srv := gittest.NewServerWithOptions(t, gittest.ServerOptions{Intercept: func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost {
			http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
			return true
		}
		return false
	}})
	r := gittest.NewRepo(t)
	sha := r.Commit("x", map[string]string{"f": "x"})
	u := srv.Add("github.com/owner/flaky", r)
	_, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: t.TempDir(), URL: u, Commit: sha, Ref: "main"})
	var nf *CommitNotFoundError
	if err == nil || errors.As(err, &nf) || !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want the server's failure naming the URL", err)
	}
}
