package gittest

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServerClone(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	r := NewRepo(t)
	first := r.Commit("init", map[string]string{"README.md": "hi\n", "src/a.go": "package a\n"})
	base := s.Add("github.com/owner/repo", r)
	if want := s.URL + "/github.com/owner/repo"; base != want {
		t.Fatalf("Add returned %q, want %q", base, want)
	}

	for _, u := range []string{base, base + ".git"} {
		t.Run(u[len(s.URL):], func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "clone")
			Git(t, t.TempDir(), "clone", "-q", u, dst)
			if got := Git(t, dst, "rev-parse", "HEAD"); got != first {
				t.Fatalf("cloned HEAD = %s, want %s", got, first)
			}
			data, err := os.ReadFile(filepath.Join(dst, "src", "a.go"))
			if err != nil || string(data) != "package a\n" {
				t.Fatalf("cloned file = %q, %v", data, err)
			}
		})
	}

	// Served live: a new commit, tag and checkout are visible at once.
	before := s.RequestsFor("github.com/owner/repo")
	r.Branch("dev")
	r.Checkout("dev")
	second := r.Commit("two", map[string]string{"b": "b"})
	r.Tag("v2")
	out := Git(t, t.TempDir(), "ls-remote", "--symref", base)
	for _, want := range []string{
		"ref: refs/heads/dev\tHEAD",
		second + "\trefs/heads/dev",
		first + "\trefs/heads/main",
		second + "\trefs/tags/v2",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("ls-remote lacks %q:\n%s", want, out)
		}
	}
	if after := s.RequestsFor("github.com/owner/repo.git"); after <= before {
		t.Fatalf("per-repo count did not grow: %d -> %d", before, after)
	}
	if s.Requests() < s.RequestsFor("github.com/owner/repo") {
		t.Fatalf("total %d < per-repo %d", s.Requests(), s.RequestsFor("github.com/owner/repo"))
	}
	if s.RequestsFor("github.com/other/repo") != 0 {
		t.Fatalf("unpublished path has requests")
	}
	log := s.Log()
	if len(log) == 0 || log[0].Repo != "github.com/owner/repo" || !strings.HasSuffix(log[0].Path, "/info/refs") {
		t.Fatalf("first logged request = %+v", log[0])
	}
}

func TestServerUnknownRepo(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.Add("github.com/owner/repo", NewRepo(t))
	err := gitErr(t, "", "ls-remote", s.URL+"/github.com/owner/nope")
	if err == nil {
		t.Fatal("ls-remote of an unpublished repo succeeded")
	}
	if s.Requests() == 0 {
		t.Fatal("request not counted")
	}
	if got := s.Log()[0].Repo; got != "" {
		t.Fatalf("unknown path attributed to %q", got)
	}
}

// TestServerSHAWant checks the GitHub-like policy: a commit reachable from a
// ref can be fetched by SHA unless DisallowSHAWant; an unreachable one never.
func TestServerSHAWant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      ServerOptions
		reachable bool
	}{
		{"allowed like GitHub", ServerOptions{}, true},
		{"disallowed", ServerOptions{DisallowSHAWant: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServerWithOptions(t, tt.opts)
			r := NewRepo(t)
			shas := r.Commits(3)
			r.Branch("gone")
			r.Checkout("gone")
			orphan := r.Commit("unreachable soon", map[string]string{"o": "o"})
			r.Checkout("main")
			r.Git("branch", "-D", "gone")
			u := s.Add("example.com/a/b", r)

			// protocol.version=0 is what go-git speaks; v2 is what git uses.
			for _, proto := range []string{"0", "2"} {
				dst := NewRepo(t)
				err := gitErr(t, dst.Dir, "-c", "protocol.version="+proto, "fetch", "-q", "--depth=1", u, shas[0])
				if (err == nil) != tt.reachable {
					t.Fatalf("protocol %s: fetch of reachable non-tip SHA: err=%v, want success=%v", proto, err, tt.reachable)
				}
				// git's v2 upload-pack serves any object it has, whatever
				// the policy; v0 must refuse what no ref reaches.
				if proto == "2" && tt.reachable {
					continue
				}
				if err := gitErr(t, dst.Dir, "-c", "protocol.version="+proto, "fetch", "-q", u, orphan); err == nil {
					t.Fatalf("protocol %s: fetch of unreachable SHA succeeded", proto)
				}
			}
		})
	}
}

func TestServerBasicAuth(t *testing.T) {
	t.Parallel()
	s := NewServerWithOptions(t, ServerOptions{Username: "x-access-token", Password: "s3cret"})
	r := NewRepo(t)
	sha := r.Commit("init", map[string]string{"f": "x"})
	u := s.Add("github.com/owner/private", r)

	if err := gitErr(t, "", "ls-remote", u); err == nil {
		t.Fatal("ls-remote without credentials succeeded")
	}
	pu, _ := url.Parse(u)
	pu.User = url.UserPassword("x-access-token", "wrong")
	if err := gitErr(t, "", "ls-remote", pu.String()); err == nil {
		t.Fatal("ls-remote with a wrong password succeeded")
	}
	pu.User = url.UserPassword("x-access-token", "s3cret")
	if out := Git(t, t.TempDir(), "ls-remote", pu.String(), "HEAD"); !strings.HasPrefix(out, sha) {
		t.Fatalf("ls-remote with credentials = %q", out)
	}
}

func TestServerIntercept(t *testing.T) {
	t.Parallel()
	s := NewServerWithOptions(t, ServerOptions{Intercept: func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/broken") {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return true
		}
		return false
	}})
	r := NewRepo(t)
	r.Commit("init", map[string]string{"f": "x"})
	ok := s.Add("h/o/ok", r)
	broken := s.Add("h/o/broken", r)
	if err := gitErr(t, "", "ls-remote", broken); err == nil {
		t.Fatal("intercepted request succeeded")
	}
	Git(t, t.TempDir(), "ls-remote", ok)
	if s.RequestsFor("h/o/broken") != 1 || s.RequestsFor("h/o/ok") == 0 {
		t.Fatalf("counts: broken=%d ok=%d", s.RequestsFor("h/o/broken"), s.RequestsFor("h/o/ok"))
	}
}

func TestSubmodules(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	lib := NewRepo(t)
	libSHA := lib.Commit("lib", map[string]string{"lib.txt": "lib\n"})
	libURL := s.Add("github.com/owner/lib", lib)

	other := NewRepo(t)
	other.Commit("other", map[string]string{"other.txt": "other\n"})

	app := NewRepo(t)
	app.Commit("app", map[string]string{"app.txt": "app\n"})
	app.AddSubmodule("vendor/lib", libURL)
	sha := app.AddSubmodule("vendor/other", other.FileURL())
	if got := app.Git("ls-tree", sha, "vendor/lib"); !strings.Contains(got, "160000 commit "+libSHA) {
		t.Fatalf("gitlink = %q, want lib at %s", got, libSHA)
	}
	appURL := s.Add("github.com/owner/app", app)

	dst := filepath.Join(t.TempDir(), "clone")
	Git(t, t.TempDir(), "-c", "protocol.file.allow=always", "clone", "-q", "--recurse-submodules", appURL, dst)
	for _, f := range []string{"vendor/lib/lib.txt", "vendor/other/other.txt"} {
		if _, err := os.Stat(filepath.Join(dst, f)); err != nil {
			t.Fatalf("submodule file missing after recursive clone: %v", err)
		}
	}
	if s.RequestsFor("github.com/owner/lib") == 0 {
		t.Fatal("submodule was not fetched over HTTP")
	}
}

// gitErr runs git expecting it may fail, returning the failure.
func gitErr(t *testing.T, dir string, args ...string) error {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	_, err := run(t, dir, nil, nil, args...)
	return err
}
