package gitsrc

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// fixture is a repository with the shapes listing must get right, the SHAs
// it should report, and its URLs over smart HTTP and file://.
type fixture struct {
	repo                *gittest.Repo
	srv                 *gittest.Server
	httpURL, fileURL    string
	first, second, head string
	annotatedObj        string // the tag object, which must never be returned
}

func newFixture(t *testing.T, branch string) *fixture {
	t.Helper()
	f := &fixture{repo: gittest.NewRepoWithBranch(t, branch), srv: gittest.NewServer(t)}
	r := f.repo
	f.first = r.Commit("first", map[string]string{"README.md": "one\n"})
	r.Tag("v0.1")
	f.annotatedObj = r.AnnotatedTag("v1.0", "release 1.0")
	r.Branch("dev")
	r.Checkout("dev")
	f.second = r.Commit("second", map[string]string{"dev.txt": "dev\n"})
	r.Checkout(branch)
	f.head = r.Commit("third", map[string]string{"README.md": "three\n"})
	f.httpURL = f.srv.Add("github.com/owner/repo", r)
	f.fileURL = r.FileURL()
	return f
}

func TestListRefs(t *testing.T) {
	t.Parallel()
	for _, branch := range []string{"main", "master"} {
		f := newFixture(t, branch)
		for _, tr := range []struct{ name, url string }{
			{"http", f.httpURL}, {"http .git", f.httpURL + ".git"}, {"file", f.fileURL},
		} {
			t.Run(branch+"/"+tr.name, func(t *testing.T) {
				refs, err := NewClient(Options{}).ListRefs(context.Background(), tr.url)
				if err != nil {
					t.Fatal(err)
				}
				if refs.Head != f.head || refs.HeadBranch != branch {
					t.Fatalf("HEAD = %s (%s), want %s (%s)", refs.Head, refs.HeadBranch, f.head, branch)
				}
				want := map[string]string{branch: f.head, "dev": f.second}
				if !equalMaps(refs.Branches, want) {
					t.Fatalf("branches = %v, want %v", refs.Branches, want)
				}
				// The annotated tag is peeled: its commit, not the tag object.
				want = map[string]string{"v0.1": f.first, "v1.0": f.first}
				if !equalMaps(refs.Tags, want) {
					t.Fatalf("tags = %v, want %v (tag object %s)", refs.Tags, want, f.annotatedObj)
				}
				if refs.URL != tr.url {
					t.Fatalf("URL = %q", refs.URL)
				}
			})
		}
	}
}

func TestResolveAgainstServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "main")
	c := NewClient(Options{})
	tests := []struct {
		ref, want string
	}{
		{"", f.head},
		{"HEAD", f.head},
		{"main", f.head},
		{"refs/heads/dev", f.second},
		{"dev", f.second},
		{"v0.1", f.first},
		{"v1.0", f.first},
		{"refs/tags/v1.0", f.first},
		{f.second[:7], f.second},
		{strings.ToUpper(f.first[:12]), f.first},
	}
	for _, u := range []string{f.httpURL, f.fileURL} {
		for _, tt := range tests {
			got, err := c.Resolve(context.Background(), u, tt.ref)
			if err != nil || got != tt.want {
				t.Errorf("Resolve(%s, %q) = %q, %v; want %q", u, tt.ref, got, err, tt.want)
			}
		}
	}

	// A full SHA needs no listing: no request reaches the server.
	before := f.srv.Requests()
	if got, err := c.Resolve(context.Background(), f.httpURL, strings.ToUpper(f.first)); err != nil || got != f.first {
		t.Fatalf("Resolve(full SHA) = %q, %v", got, err)
	}
	if n := f.srv.Requests() - before; n != 0 {
		t.Fatalf("resolving a full SHA made %d requests", n)
	}

	_, err := c.Resolve(context.Background(), f.httpURL, "mian")
	var nf *RefNotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("Resolve(mian) error = %v, want *RefNotFoundError", err)
	}
	wantMsg := `ref "mian" not found in ` + f.httpURL + ` (did you mean "main"?); available branches: main, dev; tags: v1.0, v0.1`
	if err.Error() != wantMsg {
		t.Fatalf("error text:\n got %s\nwant %s", err, wantMsg)
	}

	// An annotated tag's object SHA is not a commit tip: not expandable.
	if _, err := c.Resolve(context.Background(), f.httpURL, f.annotatedObj[:10]); !errors.As(err, &nf) || !nf.Abbrev {
		t.Fatalf("tag-object abbreviation: %v, want an abbreviation error", err)
	}
}

func TestListRefsLive(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "main")
	c := NewClient(Options{})
	// New commits, a moved HEAD and a detached HEAD show up without a sync.
	next := f.repo.Commit("fourth", map[string]string{"x": "x"})
	if got, _ := c.Resolve(context.Background(), f.httpURL, "HEAD"); got != next {
		t.Fatalf("HEAD after commit = %s, want %s", got, next)
	}
	f.repo.Checkout("dev")
	refs, err := c.ListRefs(context.Background(), f.httpURL)
	if err != nil || refs.HeadBranch != "dev" || refs.Head != f.second {
		t.Fatalf("after checkout dev: %+v, %v", refs, err)
	}
	f.repo.Checkout(f.first)
	refs, err = c.ListRefs(context.Background(), f.httpURL)
	if err != nil || refs.HeadBranch != "" || refs.Head != f.first {
		t.Fatalf("detached HEAD: head=%s branch=%q err=%v, want %s", refs.Head, refs.HeadBranch, err, f.first)
	}
}

func TestListRefsEmptyRepo(t *testing.T) {
	t.Parallel()
	srv := gittest.NewServer(t)
	u := srv.Add("github.com/o/empty", gittest.NewRepo(t))
	refs, err := NewClient(Options{}).ListRefs(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if refs.Head != "" || len(refs.Branches) != 0 {
		t.Fatalf("empty repo listed %+v", refs)
	}
	if _, err := refs.Resolve("HEAD"); err == nil || !strings.Contains(err.Error(), "repository is empty") {
		t.Fatalf("Resolve in empty repo: %v", err)
	}
}

func TestRewrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "main")
	c := NewClient(Options{Rewrites: []Rewrite{
		{From: "https://github.com/", To: f.srv.URL + "/github.com/"},
		{From: "https://github.com/owner/", To: f.srv.URL + "/github.com/owner/"},
		{From: "https://github.com/owner/mirrored", To: f.srv.URL + "/github.com/owner/repo"},
	}})
	got, err := c.Resolve(context.Background(), "https://github.com/owner/mirrored.git", "dev")
	if err != nil || got != f.second {
		t.Fatalf("Resolve via rewrite = %q, %v", got, err)
	}
	if n := f.srv.RequestsFor("github.com/owner/repo"); n != 1 {
		t.Fatalf("server saw %d requests, want exactly 1 listing", n)
	}

	_, err = c.ListRefs(context.Background(), "https://github.com/owner/missing")
	if !errors.Is(err, ErrRepoNotFound) {
		t.Fatalf("missing repo: %v, want ErrRepoNotFound", err)
	}
	for _, want := range []string{"https://github.com/owner/missing (rewritten to " + f.srv.URL + "/github.com/owner/missing)", "check the URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q lacks %q", err, want)
		}
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	const token = "ghp_supersecret123"
	srv := gittest.NewServerWithOptions(t, gittest.ServerOptions{Password: token})
	r := gittest.NewRepo(t)
	sha := r.Commit("private", map[string]string{"f": "x"})
	u := srv.Add("github.com/owner/private", r)
	host := strings.TrimPrefix(srv.URL, "http://")
	withToken := func(user, pass string) string {
		pu, _ := url.Parse(u)
		pu.User = url.UserPassword(user, pass)
		return pu.String()
	}
	tokenOnly := func(tok string) string {
		pu, _ := url.Parse(u)
		pu.User = url.User(tok)
		return pu.String()
	}

	tests := []struct {
		name    string
		creds   []Credential
		url     string
		wantErr error
		secret  string
	}{
		{"no credentials", nil, u, ErrAuth, ""},
		{"host credential", []Credential{{Host: host, Token: token}}, u, nil, ""},
		{"credential for another host is not sent", []Credential{{Host: "github.com", Token: token}}, u, ErrAuth, ""},
		{"wrong token", []Credential{{Host: host, Token: "ghp_wrongtoken999"}}, u, ErrAuth, "ghp_wrongtoken999"},
		{"userinfo in URL", nil, withToken("x-access-token", token), nil, ""},
		{"wrong userinfo password", nil, withToken("me", "hunter2secret"), ErrAuth, "hunter2secret"},
		{"wrong token as user name", nil, tokenOnly("ghp_usertoken777"), ErrAuth, "ghp_usertoken777"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			c := NewClient(Options{Credentials: tt.creds, Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)})
			refs, err := c.ListRefs(context.Background(), tt.url)
			if tt.wantErr == nil {
				if err != nil || refs.Head != sha {
					t.Fatalf("ListRefs = %+v, %v", refs, err)
				}
				if strings.Contains(refs.URL, token) {
					t.Fatalf("Refs.URL leaks the token: %s", refs.URL)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, s := range []string{token, tt.secret} {
				if s == "" {
					continue
				}
				if err != nil && strings.Contains(err.Error(), s) {
					t.Fatalf("error leaks a secret: %v", err)
				}
				if strings.Contains(logs.String(), s) {
					t.Fatalf("log leaks a secret: %s", logs.String())
				}
			}
		})
	}
}

func TestListRefsContextCancel(t *testing.T) {
	t.Parallel()
	srv := gittest.NewServerWithOptions(t, gittest.ServerOptions{Intercept: func(w http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done() // hang until the client gives up
		return true
	}})
	u := srv.Add("github.com/owner/slow", gittest.NewRepo(t))

	tests := []struct {
		name    string
		opts    Options
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
		text    string
	}{
		{
			name: "caller cancels",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantErr: context.Canceled, text: "context canceled",
		},
		{
			name: "caller deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			wantErr: context.DeadlineExceeded, text: "deadline exceeded",
		},
		{
			name:    "list timeout",
			opts:    Options{ListTimeout: 100 * time.Millisecond},
			ctx:     func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			wantErr: context.DeadlineExceeded, text: "no answer within 100ms",
		},
		{
			name: "already cancelled",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantErr: context.Canceled, text: "context canceled",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := NewClient(tt.opts).ListRefs(ctx, u)
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Fatalf("ListRefs took %v after cancellation", elapsed)
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.text) || !strings.Contains(err.Error(), u) {
				t.Fatalf("err = %v, want %v mentioning %q and the URL", err, tt.wantErr, tt.text)
			}
		})
	}
}

func TestListRefsNotFound(t *testing.T) {
	t.Parallel()
	srv := gittest.NewServer(t)
	c := NewClient(Options{})
	for _, u := range []string{srv.URL + "/github.com/nobody/nothing", "file://" + t.TempDir() + "/nothing"} {
		_, err := c.ListRefs(context.Background(), u)
		if !errors.Is(err, ErrRepoNotFound) || !strings.Contains(err.Error(), u) {
			t.Errorf("ListRefs(%s) = %v, want ErrRepoNotFound naming the URL", u, err)
		}
	}
	if _, err := c.ListRefs(context.Background(), "ftp://example.com/x"); err == nil {
		t.Error("unsupported scheme listed")
	}
}

func TestListRefsMalformedURLRedacted(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"https://me:hunter 2@example.com/o/r", "https://tok en@example.com/o/r"} {
		_, err := NewClient(Options{}).ListRefs(context.Background(), u)
		if err == nil {
			t.Fatalf("ListRefs(%q) succeeded", u)
		}
		for _, secret := range []string{"hunter", "tok en", "tok%20en"} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error leaks %q: %v", secret, err)
			}
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
