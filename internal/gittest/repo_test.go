package gittest

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestCommitsAreDeterministic(t *testing.T) {
	t.Parallel()
	build := func() (string, string) {
		r := NewRepo(t)
		r.Commit("first", map[string]string{"a.txt": "a\n", "dir/sub/b.txt": "b\n"})
		second := r.Commit("second", map[string]string{"a.txt": "a2\n"})
		return second, r.AnnotatedTag("v1", "release 1")
	}
	c1, t1 := build()
	c2, t2 := build()
	if c1 != c2 || t1 != t2 {
		t.Fatalf("same history gave different SHAs: commits %s vs %s, tags %s vs %s", c1, c2, t1, t2)
	}
	if !shaRE.MatchString(c1) {
		t.Fatalf("commit SHA %q is not 40 hex", c1)
	}
}

func TestRepoOperations(t *testing.T) {
	t.Parallel()
	r := NewRepo(t)
	first := r.Commit("first", map[string]string{"dir/sub/file.txt": "hello\n"})
	if got := r.Head(); got != first {
		t.Fatalf("Head = %s, want %s", got, first)
	}
	if got := r.Git("symbolic-ref", "HEAD"); got != "refs/heads/main" {
		t.Fatalf("initial branch = %s, want refs/heads/main", got)
	}
	data, err := os.ReadFile(filepath.Join(r.Dir, "dir", "sub", "file.txt"))
	if err != nil || string(data) != "hello\n" {
		t.Fatalf("nested file: %q, %v", data, err)
	}
	if got := r.Git("show", "-s", "--format=%an <%ae> %at", first); got != "Git Test <gittest@example.com> 1704067200" {
		t.Fatalf("identity/date = %q", got)
	}

	r.Branch("dev")
	r.Tag("light")
	tagObj := r.AnnotatedTag("v1.0", "release")
	if tagObj == first {
		t.Fatalf("annotated tag returned the commit SHA, want the tag object")
	}
	if got := r.Git("cat-file", "-t", tagObj); got != "tag" {
		t.Fatalf("AnnotatedTag returned a %s, want a tag object", got)
	}
	if got := r.RevParse("v1.0^{commit}"); got != first {
		t.Fatalf("peeled tag = %s, want %s", got, first)
	}
	if got := r.RevParse("light"); got != first {
		t.Fatalf("lightweight tag = %s, want %s", got, first)
	}

	r.Checkout("dev")
	second := r.Commit("on dev", map[string]string{"dev.txt": "dev\n"})
	if got := r.RevParse("refs/heads/dev"); got != second {
		t.Fatalf("dev = %s, want %s", got, second)
	}
	if got := r.RevParse("main"); got != first {
		t.Fatalf("main moved to %s", got)
	}

	r.WriteFileMode("bin/run.sh", "#!/bin/sh\n", 0o755)
	r.Symlink("link", "dir/sub/file.txt")
	r.Remove("dev.txt")
	third := r.CommitAll("modes")
	tree := r.Git("ls-tree", "-r", third)
	for _, want := range []string{"100755 blob", "120000 blob"} {
		if !strings.Contains(tree, want) {
			t.Fatalf("tree lacks %q:\n%s", want, tree)
		}
	}
	if strings.Contains(tree, "dev.txt") {
		t.Fatalf("removed file still committed:\n%s", tree)
	}

	r.Checkout(first)
	if out := r.Git("rev-parse", "--abbrev-ref", "HEAD"); out != "HEAD" {
		t.Fatalf("checkout of a SHA did not detach HEAD: %s", out)
	}
}

func TestSetRefs(t *testing.T) {
	t.Parallel()
	r := NewRepo(t)
	shas := r.Commits(3)
	r.SetRefs(map[string]string{"refs/tags/t0": shas[0], "refs/pull/7/head": shas[1], "refs/heads/b": "HEAD~1"})
	for ref, want := range map[string]string{"t0": shas[0], "refs/pull/7/head": shas[1], "b": shas[1]} {
		if got := r.RevParse(ref); got != want {
			t.Errorf("%s = %s, want %s", ref, got, want)
		}
	}
}

func TestNewRepoWithBranch(t *testing.T) {
	t.Parallel()
	r := NewRepoWithBranch(t, "master")
	r.Commit("init", map[string]string{"f": "x"})
	if got := r.Git("symbolic-ref", "HEAD"); got != "refs/heads/master" {
		t.Fatalf("HEAD = %s, want refs/heads/master", got)
	}
}

func TestCommitsMany(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before int // ordinary commits made first
		n      int
	}{
		{"unborn branch", 0, 50},
		{"on top of history", 2, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRepo(t)
			for i := 0; i < tt.before; i++ {
				r.Commit("pre", map[string]string{"keep.txt": strings.Repeat("k", i+1)})
			}
			shas := r.Commits(tt.n)
			if len(shas) != tt.n {
				t.Fatalf("got %d SHAs, want %d", len(shas), tt.n)
			}
			if got := r.Head(); got != shas[tt.n-1] {
				t.Fatalf("HEAD = %s, want last SHA %s", got, shas[tt.n-1])
			}
			if got := r.Git("rev-list", "--count", "HEAD"); got != strconv.Itoa(tt.before+tt.n) {
				t.Fatalf("history length = %s, want %d", got, tt.before+tt.n)
			}
			if got := r.RevParse(shas[tt.n-1] + "~1"); got != shas[tt.n-2] {
				t.Fatalf("parent of last = %s, want %s", got, shas[tt.n-2])
			}
			// The working tree follows the new tip and earlier files survive.
			data, err := os.ReadFile(filepath.Join(r.Dir, "commits.txt"))
			if err != nil || !strings.HasPrefix(string(data), "commit ") {
				t.Fatalf("commits.txt = %q, %v", data, err)
			}
			if status := r.Git("status", "--porcelain"); status != "" {
				t.Fatalf("working tree dirty after Commits:\n%s", status)
			}
			if tt.before > 0 {
				if _, err := os.Stat(filepath.Join(r.Dir, "keep.txt")); err != nil {
					t.Fatalf("earlier file lost: %v", err)
				}
			}
			// Later ordinary commits keep dates increasing after the batch.
			next := r.Commit("after", map[string]string{"x": "y"})
			after, _ := strconv.Atoi(r.Git("show", "-s", "--format=%at", next))
			last, _ := strconv.Atoi(r.Git("show", "-s", "--format=%at", shas[tt.n-1]))
			if after <= last {
				t.Fatalf("commit after batch is not later than the batch")
			}
		})
	}
}

func TestFileURL(t *testing.T) {
	t.Parallel()
	r := NewRepo(t)
	sha := r.Commit("init", map[string]string{"f": "x"})
	u := r.FileURL()
	if !strings.HasPrefix(u, "file:///") {
		t.Fatalf("FileURL = %q", u)
	}
	out := Git(t, t.TempDir(), "ls-remote", u, "HEAD")
	if !strings.HasPrefix(out, sha) {
		t.Fatalf("ls-remote %s = %q, want %s", u, out, sha)
	}
}

func TestCommitRaw(t *testing.T) {
	t.Parallel()
	r := NewRepo(t)
	first := r.Commit("normal", map[string]string{"a": "a\n"})
	sha := r.CommitRaw("raw", []RawEntry{
		{Mode: ModeFile, Name: "..", Content: "evil\n"},
		{Mode: ModeDir, Name: "d", Entries: []RawEntry{
			{Mode: ModeExec, Name: "run", Content: "#!/bin/sh\n"},
			{Mode: ModeSymlink, Name: "l", Content: "/etc/passwd"},
		}},
		{Mode: ModeGitlink, Name: "sub", SHA: first},
	})
	if got := r.Head(); got != sha {
		t.Fatalf("HEAD = %s, want the raw commit %s", got, sha)
	}
	if got := r.RevParse("HEAD^"); got != first {
		t.Fatalf("parent = %s, want %s", got, first)
	}
	ls := r.Git("ls-tree", "-r", sha)
	for _, want := range []string{"100644 blob", "\t..", "100755 blob", "\td/run", "120000 blob", "\td/l", "160000 commit " + first + "\tsub"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("ls-tree lacks %q:\n%s", want, ls)
		}
	}
	if got := r.Git("cat-file", "blob", sha+":d/l"); got != "/etc/passwd" {
		t.Fatalf("symlink target = %q", got)
	}
}
