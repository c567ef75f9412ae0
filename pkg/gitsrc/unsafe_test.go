package gitsrc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// rawExport commits entries as a raw tree (unchecked by git), serves it over
// smart HTTP, fetches it and exports it with opts into a fresh parent
// directory, which it returns with the error.
func rawExport(t *testing.T, entries []gittest.RawEntry, opts ExportOptions) (string, error) {
	t.Helper()
	r := gittest.NewRepo(t)
	sha := r.CommitRaw("crafted", entries)
	u := gittest.NewServer(t).Add("evil.example/owner/repo", r)
	res, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: t.TempDir(), URL: u, Commit: sha})
	if err != nil {
		t.Fatalf("fetch of the crafted tree: %v", err)
	}
	parent := t.TempDir()
	return parent, Export(context.Background(), res.RepoDir, sha, filepath.Join(parent, "node"), opts)
}

func file(name, content string) gittest.RawEntry {
	return gittest.RawEntry{Mode: gittest.ModeFile, Name: name, Content: content}
}

func link(name, target string) gittest.RawEntry {
	return gittest.RawEntry{Mode: gittest.ModeSymlink, Name: name, Content: target}
}

func dir(name string, entries ...gittest.RawEntry) gittest.RawEntry {
	return gittest.RawEntry{Mode: gittest.ModeDir, Name: name, Entries: entries}
}

// TestExportRefusesMaliciousTrees feeds trees no honest git would make and
// checks nothing is written, inside or outside the destination.
func TestExportRefusesMaliciousTrees(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []gittest.RawEntry
		path    string // the refused entry; "" for a non-path error
	}{
		{"dot-dot file", []gittest.RawEntry{file("ok", "x"), file("..", "escaped")}, ".."},
		{"dot-dot directory", []gittest.RawEntry{dir("..", file("escaped.txt", "x"))}, ".."},
		{"nested dot-dot", []gittest.RawEntry{dir("a", dir("..", dir("..", file("escaped.txt", "x"))))}, "a/.."},
		{"dot", []gittest.RawEntry{dir(".", file("x", "x"))}, "."},
		{"slash in name", []gittest.RawEntry{file("a/../../escaped.txt", "x")}, "a/../../escaped.txt"},
		{"absolute name", []gittest.RawEntry{file("/tmp/escaped.txt", "x")}, "/tmp/escaped.txt"},
		{"git dir", []gittest.RawEntry{dir(".git", file("config", "[core]\n\thooksPath = /tmp\n"))}, ".git"},
		{"git dir in caps", []gittest.RawEntry{dir("sub", dir(".GIT", file("HEAD", "x")))}, "sub/.GIT"},
		{"absolute symlink", []gittest.RawEntry{link("passwd", "/etc/passwd")}, "passwd"},
		{"escaping symlink", []gittest.RawEntry{dir("a", link("up", "../../outside"))}, "a/up"},
		{"dot-dot after a name", []gittest.RawEntry{link("d", "."), link("up", "d/..")}, "up"},
		{"write through a symlink", []gittest.RawEntry{link("x", "."), dir("x", file("y", "z"))}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parent, err := rawExport(t, tt.entries, ExportOptions{})
			if err == nil {
				t.Fatal("export of a malicious tree succeeded")
			}
			var up *UnsafePathError
			if tt.path != "" && (!errors.As(err, &up) || up.Path != tt.path) {
				t.Fatalf("err = %v, want *UnsafePathError for %q", err, tt.path)
			}
			if names := dirNames(t, parent); len(names) != 0 {
				t.Fatalf("refused export left %v", names)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(parent), "escaped.txt")); err == nil {
				t.Fatal("a file was written outside the destination")
			}
		})
	}
}

func TestExportSymlinkPolicies(t *testing.T) {
	t.Parallel()
	entries := []gittest.RawEntry{
		file("a.txt", "a"),
		link("abs", "/etc/passwd"),
		dir("sub", link("ok", "../a.txt"), link("out", "../../x")),
	}
	t.Run("skip", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		parent, err := rawExport(t, entries, ExportOptions{UnsafeSymlinks: SkipUnsafeSymlinks, Logger: zerolog.New(&logs)})
		if err != nil {
			t.Fatal(err)
		}
		got := diskNodes(t, filepath.Join(parent, "node"))
		want := map[string]node{"a.txt": {"file", "a"}, "sub": {"dir", ""}, "sub/ok": {"link", "../a.txt"}}
		if d := diffNodes(got, want); d != "" {
			t.Fatalf("skip policy:\n%s", d)
		}
		for _, p := range []string{`"path":"abs"`, `"path":"sub/out"`, "skipping unsafe symlink"} {
			if !strings.Contains(logs.String(), p) {
				t.Fatalf("log lacks %s:\n%s", p, logs.String())
			}
		}
	})
	t.Run("keep", func(t *testing.T) {
		t.Parallel()
		parent, err := rawExport(t, entries, ExportOptions{UnsafeSymlinks: KeepUnsafeSymlinks})
		if err != nil {
			t.Fatal(err)
		}
		got := diskNodes(t, filepath.Join(parent, "node"))
		if got["abs"] != (node{"link", "/etc/passwd"}) || got["sub/out"] != (node{"link", "../../x"}) {
			t.Fatalf("keep policy wrote %v", got)
		}
	})
}

func TestUnsafeLink(t *testing.T) {
	tests := []struct {
		link, target string
		safe         bool
	}{
		{"a", "b", true},
		{"a", "./b/c", true},
		{"a", "dir/", true},
		{"d/a", "../b", true},
		{"d/e/a", "../../b", true},
		{"d/e/a", "../../../b", false},
		{"a", "..", false},
		{"a", "../a", false},
		{"a", "/abs", false},
		{"a", "", false},
		{"a", "b/../c", false},
		{"d/a", "b/..", false},
		{"a", "x\x00y", false},
	}
	for _, tt := range tests {
		if got := unsafeLink(tt.link, tt.target) == ""; got != tt.safe {
			t.Errorf("unsafeLink(%q, %q) safe = %v, want %v", tt.link, tt.target, got, tt.safe)
		}
	}
}
