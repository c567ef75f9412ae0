package gitsrc

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// superproject is app, with submodules over smart HTTP: vendor/lib by
// absolute URL (lib itself has deps/inner by the relative URL "../inner"),
// and vendor/rel by the relative URL "../lib2".
type superproject struct {
	srv                   *gittest.Server
	app                   *gittest.Repo
	appURL, appSHA        string
	libSHA, innerSHA, rel string
}

func newSuperproject(t *testing.T) *superproject {
	t.Helper()
	sp := &superproject{srv: gittest.NewServer(t)}
	inner := gittest.NewRepo(t)
	sp.innerSHA = inner.Commit("inner", map[string]string{"inner.txt": "inner\n"})
	innerURL := sp.srv.Add("github.com/owner/inner", inner)

	lib := gittest.NewRepo(t)
	lib.Commit("lib", map[string]string{"lib.txt": "lib\n"})
	lib.AddSubmodule("deps/inner", innerURL)
	lib.Git("config", "-f", ".gitmodules", "submodule.deps/inner.url", "../inner")
	sp.libSHA = lib.CommitAll("relative inner")
	libURL := sp.srv.Add("github.com/owner/lib", lib)

	lib2 := gittest.NewRepo(t)
	sp.rel = lib2.Commit("lib2", map[string]string{"lib2.txt": "lib2\n"})
	lib2URL := sp.srv.Add("github.com/owner/lib2", lib2)

	sp.app = gittest.NewRepo(t)
	sp.app.Commit("app", map[string]string{"app.py": "print('app')\n"})
	sp.app.AddSubmodule("vendor/lib", libURL)
	sp.app.AddSubmodule("vendor/rel", lib2URL)
	sp.app.Git("config", "-f", ".gitmodules", "submodule.vendor/rel.url", "../lib2.git")
	sp.appSHA = sp.app.CommitAll("relative lib2")
	sp.appURL = sp.srv.Add("github.com/owner/app", sp.app)
	lib.Commit("later", map[string]string{"lib.txt": "moved on\n"}) // the pin is now behind the tip
	return sp
}

func TestMaterializeSubmodulesOverHTTP(t *testing.T) {
	t.Parallel()
	sp := newSuperproject(t)
	cache := t.TempDir()
	c := NewClient(Options{})
	dest := filepath.Join(t.TempDir(), "app")
	res, err := c.Materialize(context.Background(), FetchRequest{CacheDir: cache, URL: sp.appURL, Commit: sp.appSHA}, dest, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != PathSHA {
		t.Fatalf("superproject path = %s", res.Path)
	}
	want := map[string]string{
		"app.py":                          "print('app')\n",
		"vendor/lib/lib.txt":              "lib\n",
		"vendor/lib/deps/inner/inner.txt": "inner\n",
		"vendor/rel/lib2.txt":             "lib2\n",
	}
	got := diskNodes(t, dest)
	for p, content := range want {
		if got[p] != (node{"file", content}) {
			t.Fatalf("%s = %+v, want %q", p, got[p], content)
		}
	}
	for p := range got {
		if strings.HasSuffix(p, ".git") || strings.Contains(p, ".git/") {
			t.Fatalf("export holds git metadata: %s", p)
		}
	}
	// Each submodule has its own cache entry, keyed by its resolved URL.
	for _, key := range []string{"github.com/owner/lib", "github.com/owner/lib2", "github.com/owner/inner"} {
		dir := filepath.Join(cache, "127.0.0.1_"+port(t, sp.srv.URL), filepath.FromSlash(key)+".git")
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("no cache entry for %s: %v", key, err)
		}
	}

	// Everything is cached now: a second build makes no request.
	before := sp.srv.Requests()
	if _, err := c.Materialize(context.Background(), FetchRequest{CacheDir: cache, URL: sp.appURL, Commit: sp.appSHA}, filepath.Join(t.TempDir(), "again"), ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := sp.srv.Requests() - before; n != 0 {
		t.Fatalf("cached materialize made %d requests", n)
	}

	// Nesting beyond the limit is an error naming the submodule.
	_, err = c.Materialize(context.Background(), FetchRequest{CacheDir: cache, URL: sp.appURL, Commit: sp.appSHA},
		filepath.Join(t.TempDir(), "shallow"), ExportOptions{Submodules: SubmoduleOptions{MaxDepth: 1}})
	if err == nil || !strings.Contains(err.Error(), "submodule vendor/lib/deps/inner: nested more than 1 levels deep") {
		t.Fatalf("depth limit: %v", err)
	}
}

func TestSubmodulesLocalURLs(t *testing.T) {
	t.Parallel()
	other := gittest.NewRepo(t)
	other.Commit("other", map[string]string{"other.txt": "other\n"})
	app := gittest.NewRepo(t)
	app.Commit("app", map[string]string{"a": "a\n"})
	sha := app.AddSubmodule("vendor/other", other.FileURL())
	srv := gittest.NewServer(t)
	appHTTP := srv.Add("github.com/owner/app", app)

	tests := []struct {
		name   string
		url    string
		allow  bool
		errMsg string
	}{
		{"file parent, file submodule", app.FileURL(), false, ""},
		{"remote parent, file submodule refused", appHTTP, false, "local URL " + other.FileURL() + " refused in a remote repository"},
		{"remote parent, file submodule allowed", appHTTP, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			dest := filepath.Join(parent, "app")
			_, err := NewClient(Options{}).Materialize(context.Background(), FetchRequest{CacheDir: t.TempDir(), URL: tt.url, Commit: sha}, dest,
				ExportOptions{Submodules: SubmoduleOptions{AllowLocal: tt.allow}})
			if tt.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("err = %v, want %q", err, tt.errMsg)
				}
				if names := dirNames(t, parent); len(names) != 0 {
					t.Fatalf("refused export left %v", names)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(filepath.Join(dest, "vendor", "other", "other.txt")); err != nil || string(data) != "other\n" {
				t.Fatalf("submodule file = %q, %v", data, err)
			}
		})
	}
}

// A gitlink without a .gitmodules entry (a nested clone added by mistake)
// and submodules without a fetcher become empty directories, with a
// warning, as with git.
func TestSubmodulesLeftEmpty(t *testing.T) {
	t.Parallel()
	sp := newSuperproject(t)
	r := gittest.NewRepo(t)
	stray := r.CommitRaw("stray gitlink", []gittest.RawEntry{
		file("a.txt", "a"),
		{Mode: gittest.ModeGitlink, Name: "stray", SHA: sp.rel},
	})
	strayURL := sp.srv.Add("github.com/owner/stray", r)

	tests := []struct {
		name, url, commit string
		opts              ExportOptions
		empty             []string
		warning           string
	}{
		{"stray gitlink", strayURL, stray, ExportOptions{}, []string{"stray"}, "submodule has no URL in .gitmodules; left empty"},
		{"no fetcher", sp.appURL, sp.appSHA, ExportOptions{}, []string{"vendor/lib", "vendor/rel"}, "submodules left empty: no fetcher configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			tt.opts.Logger = zerolog.New(&logs)
			cache := t.TempDir()
			c := NewClient(Options{})
			res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: tt.url, Commit: tt.commit})
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "stray gitlink" {
				tt.opts.Submodules = SubmoduleOptions{Fetcher: c, CacheDir: cache, URL: tt.url}
			}
			dest := filepath.Join(t.TempDir(), "x")
			if err := Export(context.Background(), res.RepoDir, tt.commit, dest, tt.opts); err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.empty {
				if names := dirNames(t, filepath.Join(dest, filepath.FromSlash(p))); len(names) != 0 {
					t.Fatalf("%s holds %v, want an empty directory", p, names)
				}
			}
			if !strings.Contains(logs.String(), tt.warning) {
				t.Fatalf("log lacks %q:\n%s", tt.warning, logs.String())
			}
		})
	}
}

func TestResolveSubmoduleURL(t *testing.T) {
	tests := []struct {
		parent, sub, want string
	}{
		{"https://github.com/owner/app", "../lib.git", "https://github.com/owner/lib.git"},
		{"https://github.com/owner/app.git", "../lib", "https://github.com/owner/lib"},
		{"https://github.com/owner/app/", "./sub", "https://github.com/owner/app/sub"},
		{"https://github.com/owner/app", "../../other/lib", "https://github.com/other/lib"},
		{"https://github.com/owner/app", "https://gitlab.com/x/y", "https://gitlab.com/x/y"},
		{"git@github.com:owner/app.git", "../lib.git", "git@github.com:owner/lib.git"},
		{"git@github.com:app", "../lib", "git@github.com:lib"},
		{"file:///srv/git/app", "../lib", "file:///srv/git/lib"},
		{"/srv/git/app", ".././lib", "/srv/git/lib"},
		{"https://user:tok@host/o/app", "../lib", "https://user:tok@host/o/lib"},
	}
	for _, tt := range tests {
		got, err := resolveSubmoduleURL(tt.parent, tt.sub)
		if err != nil || got != tt.want {
			t.Errorf("resolve(%q, %q) = %q, %v; want %q", tt.parent, tt.sub, got, err, tt.want)
		}
	}
	for _, bad := range [][2]string{
		{"https://github.com/app", "../../../x"},
		{"", "../x"},
		{"https://github.com/o/app", "--upload-pack=evil"},
	} {
		if got, err := resolveSubmoduleURL(bad[0], bad[1]); err == nil {
			t.Errorf("resolve(%q, %q) = %q, want an error", bad[0], bad[1], got)
		}
	}
}
