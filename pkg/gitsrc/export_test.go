package gitsrc

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// node is one exported path as a comparison sees it.
type node struct {
	kind    string // "dir", "file", "exec", "link"
	content string // file content or link target
}

// archiveNodes is what `git archive` makes of commit: the reference the
// export must match.
func archiveNodes(t *testing.T, r *gittest.Repo, commit string) map[string]node {
	t.Helper()
	cmd := exec.Command(gittest.GitPath(t), "archive", "--format=tar", commit)
	cmd.Dir, cmd.Env = r.Dir, gittest.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git archive: %v", err)
	}
	nodes := map[string]node{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		switch h.Typeflag {
		case tar.TypeDir:
			nodes[name] = node{kind: "dir"}
		case tar.TypeSymlink:
			nodes[name] = node{kind: "link", content: h.Linkname}
		case tar.TypeReg:
			data, _ := io.ReadAll(tr)
			kind := "file"
			if h.Mode&0o111 != 0 {
				kind = "exec"
			}
			nodes[name] = node{kind: kind, content: string(data)}
		}
	}
	return nodes
}

// diskNodes reads an exported tree without following links.
func diskNodes(t *testing.T, root string) map[string]node {
	t.Helper()
	nodes := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			nodes[rel] = node{kind: "link", content: target}
		case info.IsDir():
			if info.Mode().Perm() != 0o755 {
				t.Errorf("%s: directory mode %v, want 0755", rel, info.Mode().Perm())
			}
			nodes[rel] = node{kind: "dir"}
		default:
			data, _ := os.ReadFile(p)
			kind := "file"
			if info.Mode().Perm()&0o111 != 0 {
				kind = "exec"
			}
			nodes[rel] = node{kind: kind, content: string(data)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func diffNodes(got, want map[string]node) string {
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing "+p)
		} else if g != w {
			diffs = append(diffs, "differs "+p+": got "+g.kind+" "+g.content[:min(len(g.content), 40)]+", want "+w.kind+" "+w.content[:min(len(w.content), 40)])
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

// richRepo has the shapes an export must get right.
func richRepo(t *testing.T) (*gittest.Repo, string) {
	t.Helper()
	r := gittest.NewRepo(t)
	r.Commit("files", map[string]string{
		"README.md":                    "# readme\n",
		"empty.txt":                    "",
		"dir with space/ünïcode ✓.txt": "unicode\n",
		"deep/nested/a/b/c.txt":        "deep\n",
		"nodes/__init__.py":            "NODE_CLASS_MAPPINGS = {}\n",
		".gitignore":                   "*.pyc\n",
		"crlf.txt":                     "a\r\nb\r\n",
	})
	r.WriteFileMode("bin/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	r.Symlink("link-to-readme", "README.md")
	r.Symlink("deep/nested/up", "../../README.md")
	r.Symlink("dirlink", "deep/nested")
	r.Symlink("dangling", "does-not-exist")
	return r, r.CommitAll("modes and links")
}

func TestExportMatchesGitArchive(t *testing.T) {
	t.Parallel()
	r, sha := richRepo(t)
	srv := gittest.NewServer(t)
	u := srv.Add("github.com/owner/rich", r)
	cache := t.TempDir()
	res, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: u, Commit: sha})
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "custom_nodes", "rich")
	if err := Export(context.Background(), res.RepoDir, sha, dest, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := diffNodes(diskNodes(t, dest), archiveNodes(t, r, sha)); d != "" {
		t.Fatalf("export differs from git archive:\n%s", d)
	}
	if _, err := os.Lstat(filepath.Join(dest, ".git")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("export has a .git: %v", err)
	}
	if names := dirNames(t, filepath.Dir(dest)); len(names) != 1 {
		t.Fatalf("parent holds %v, want only the export", names)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Replacing an export: a reader never finds dest missing or mixed, and a
// dest that is a symlink (the original tool's layout) loses only the link.
func TestExportReplacesAtomically(t *testing.T) {
	t.Parallel()
	r := gittest.NewRepo(t)
	var commits []string
	for _, v := range []string{"A", "B"} {
		files := map[string]string{"version.txt": v}
		for i := range 50 {
			files["pkg/"+string(rune('a'+i%26))+v+".py"] = v
		}
		r.Remove("pkg")
		commits = append(commits, r.Commit(v, files))
	}
	cache := t.TempDir()
	c := NewClient(Options{})
	var repoDir string
	for _, sha := range commits {
		res, err := c.Fetch(context.Background(), FetchRequest{CacheDir: cache, URL: r.FileURL(), Commit: sha})
		if err != nil {
			t.Fatal(err)
		}
		repoDir = res.RepoDir
	}

	parent := t.TempDir()
	victim := filepath.Join(parent, "victim")
	if err := os.MkdirAll(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(victim, "keep.txt"), "mine")
	dest := filepath.Join(parent, "node")
	if err := os.Symlink(victim, dest); err != nil {
		t.Fatal(err)
	}
	if err := Export(context.Background(), repoDir, commits[0], dest, ExportOptions{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(dest); err != nil || !fi.IsDir() {
		t.Fatalf("dest after replacing a link: %v, %v", fi, err)
	}
	if data, err := os.ReadFile(filepath.Join(victim, "keep.txt")); err != nil || string(data) != "mine" {
		t.Fatalf("the old link's target was touched: %q, %v", data, err)
	}

	var stop atomic.Bool
	var bad atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			data, err := os.ReadFile(filepath.Join(dest, "version.txt"))
			if err != nil || (string(data) != "A" && string(data) != "B") {
				bad.Store("read " + string(data) + ": " + errString(err))
				return
			}
		}
	})
	for i := range 20 {
		if err := Export(context.Background(), repoDir, commits[(i+1)%2], dest, ExportOptions{NoSync: true}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatalf("a reader saw a missing or partial export: %v", b)
	}
	if data, _ := os.ReadFile(filepath.Join(dest, "version.txt")); string(data) != "A" {
		t.Fatalf("final version = %q, want A", data)
	}
	if names := dirNames(t, parent); strings.Join(names, ",") != "node,victim" {
		t.Fatalf("parent holds %v, want node and victim only", names)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestExportCancelled(t *testing.T) {
	t.Parallel()
	r, sha := richRepo(t)
	res, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: t.TempDir(), URL: r.FileURL(), Commit: sha})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parent := t.TempDir()
	err = Export(ctx, res.RepoDir, sha, filepath.Join(parent, "x"), ExportOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if names := dirNames(t, parent); len(names) != 0 {
		t.Fatalf("cancelled export left %v", names)
	}
}

func TestRemoveStaleExports(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	for _, n := range []string{"node", ".node.tmp-123", ".node.old-9", ".node.tmp-x", "node.tmp-1", ".other.tmp-1", ".node.tmp-12.git"} {
		if err := os.Mkdir(filepath.Join(parent, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveStaleExports(filepath.Join(parent, "node")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(dirNames(t, parent), ","); got != ".node.tmp-12.git,.node.tmp-x,.other.tmp-1,node,node.tmp-1" {
		t.Fatalf("left %s", got)
	}
}
