package gittest

import (
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// ServerOptions configures a Server. The zero value behaves like GitHub for
// public repositories.
type ServerOptions struct {
	// DisallowSHAWant turns off uploadpack.allowReachableSHA1InWant, so a
	// fetch of a commit by SHA that is not a ref tip is refused and callers
	// must fall back to fetching a ref. git's protocol v2 upload-pack does
	// not enforce this policy, so such a server answers in protocol v0 only
	// (go-git speaks v0 anyway; the git CLI falls back to it).
	DisallowSHAWant bool

	// Username and Password, when Password is set, require HTTP basic auth
	// on every request (401 otherwise), as for a private repository. An
	// empty Username accepts any user name, like GitHub with a token.
	Username, Password string

	// Intercept, when set, sees every request first (after it is counted)
	// and may answer it itself by returning true: to inject failures or to
	// hang. One that hangs must return once r.Context() is done, or the
	// server's shutdown at the end of the test blocks.
	Intercept func(w http.ResponseWriter, r *http.Request) bool
}

// Request is one HTTP request a Server received.
type Request struct {
	Method string
	// Repo is the path the repository was published under ("" when the
	// URL matched no repository).
	Repo string
	// Path and Query are the request URL's.
	Path, Query string
}

// Server serves published repositories over git's smart HTTP protocol
// through `git http-backend`, as GitHub does, on 127.0.0.1.
//
// Repositories are served live from their .git directory, not from a copy:
// commits, branches, tags and checkouts made in a Repo after Add are visible
// to the next request without any sync step.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234 (no trailing slash).
	URL string

	t    testing.TB
	opts ServerOptions
	srv  *httptest.Server
	git  string

	mu     sync.Mutex
	repos  map[string]*Repo // published path -> repo
	perRep map[string]int64
	log    []Request
	total  atomic.Int64
	stderr io.Writer
}

// testLogWriter sends http-backend's stderr ("not our ref", ...) to the
// test log, where it explains a failure, instead of the process's stderr.
type testLogWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("git http-backend: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// NewServer starts a Server with default options; it stops when the test
// ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	return NewServerWithOptions(t, ServerOptions{})
}

// NewServerWithOptions starts a Server configured by opts; it stops when the
// test ends.
func NewServerWithOptions(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	s := &Server{
		t:      t,
		opts:   opts,
		git:    GitPath(t),
		repos:  map[string]*Repo{},
		perRep: map[string]int64{},
	}
	s.stderr = &testLogWriter{t: t}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Add publishes r under path (for example "github.com/owner/repo") and
// returns its clone URL, s.URL+"/"+path. The same URL with a ".git" suffix
// also works. Publishing a repo under several paths (forks) is allowed.
func (s *Server) Add(path string, r *Repo) string {
	s.t.Helper()
	path = strings.Trim(path, "/")
	path = strings.TrimSuffix(path, ".git")
	if path == "" {
		s.t.Fatalf("gittest: empty repository path")
	}
	s.mu.Lock()
	s.repos[path] = r
	s.mu.Unlock()
	return s.URL + "/" + path
}

// Requests returns the number of HTTP requests served so far.
func (s *Server) Requests() int64 { return s.total.Load() }

// RequestsFor returns the number of HTTP requests for the repository
// published under path.
func (s *Server) RequestsFor(path string) int64 {
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perRep[path]
}

// Log returns a copy of every request received so far, in arrival order.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	repoPath, prefix, repo := s.match(r.URL.Path)
	s.mu.Lock()
	s.log = append(s.log, Request{Method: r.Method, Repo: repoPath, Path: r.URL.Path, Query: r.URL.RawQuery})
	if repo != nil {
		s.perRep[repoPath]++
	}
	s.mu.Unlock()

	if s.opts.Intercept != nil && s.opts.Intercept(w, r) {
		return
	}
	if s.opts.Password != "" {
		user, pass, ok := r.BasicAuth()
		if !ok || pass != s.opts.Password || (s.opts.Username != "" && user != s.opts.Username) {
			w.Header().Set("WWW-Authenticate", `Basic realm="gittest"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	if repo == nil {
		http.NotFound(w, r)
		return
	}

	// The repository's root becomes GIT_PROJECT_ROOT and the matched URL
	// prefix is cut off, so http-backend sees PATH_INFO "/info/refs" etc.
	// and finds Dir/.git itself; no symlink farm or copy is needed.
	if s.opts.DisallowSHAWant {
		r.Header.Del("Git-Protocol")
	}
	h := &cgi.Handler{
		Path:       s.git,
		Args:       []string{"http-backend"},
		Root:       prefix,
		Dir:        repo.Dir,
		Env:        s.backendEnv(repo.Dir),
		InheritEnv: []string{"PATH"},
		Stderr:     s.stderr,
	}
	h.ServeHTTP(w, r)
}

// match finds the published repository a URL path belongs to, accepting the
// path with and without ".git"; the longest published path wins.
func (s *Server) match(urlPath string) (repoPath, prefix string, repo *Repo) {
	p := strings.TrimPrefix(urlPath, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range s.repos {
		for _, cand := range []string{name + ".git", name} {
			if strings.HasPrefix(p, cand+"/") && len(name) > len(repoPath) {
				repoPath, prefix, repo = name, "/"+cand, r
				break
			}
		}
	}
	return repoPath, prefix, repo
}

func (s *Server) backendEnv(dir string) []string {
	cfg := map[string]string{
		// Like GitHub: any commit reachable from a ref can be fetched by SHA,
		// but not arbitrary (unreachable) objects.
		"uploadpack.allowReachableSHA1InWant": strconv.FormatBool(!s.opts.DisallowSHAWant),
		"uploadpack.allowAnySHA1InWant":       "false",
		"uploadpack.allowTipSHA1InWant":       strconv.FormatBool(!s.opts.DisallowSHAWant),
		"uploadpack.allowFilter":              "true",
		// A test may own the temp dir under a different uid in containers.
		"safe.directory": "*",
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := []string{
		"GIT_PROJECT_ROOT=" + filepath.Clean(dir),
		"GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_COUNT=" + strconv.Itoa(len(keys)),
	}
	for i, k := range keys {
		n := strconv.Itoa(i)
		env = append(env, "GIT_CONFIG_KEY_"+n+"="+k, "GIT_CONFIG_VALUE_"+n+"="+cfg[k])
	}
	return env
}
