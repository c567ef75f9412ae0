package gittest

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Repo is a non-bare git repository in a test's temp dir. Its working tree
// and .git live in Dir. Mutating methods are meant for the test goroutine;
// a Server may read the repository concurrently.
type Repo struct {
	// Dir is the working tree; the repository itself is Dir/.git.
	Dir string

	t    testing.TB
	mu   sync.Mutex
	tick int64 // commits and annotated tags made so far, for the fixed dates
}

// NewRepo creates an empty repository whose initial branch is "main".
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	return NewRepoWithBranch(t, "main")
}

// NewRepoWithBranch creates an empty repository whose initial branch (and so
// the HEAD a server advertises) is branch, e.g. "master".
func NewRepoWithBranch(t testing.TB, branch string) *Repo {
	t.Helper()
	r := &Repo{Dir: t.TempDir(), t: t}
	r.Git("init", "-q", "-b", branch)
	return r
}

// Git runs a git command in the repository and returns its trimmed stdout.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	return Git(r.t, r.Dir, args...)
}

// FileURL returns the file:// URL of the repository.
func (r *Repo) FileURL() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(r.Dir)}).String()
}

// WriteFile writes content to the slash-separated relative path (parent
// directories created) with mode 0644, without committing.
func (r *Repo) WriteFile(path, content string) {
	r.t.Helper()
	r.WriteFileMode(path, content, 0o644)
}

// WriteFileMode is WriteFile with an explicit mode; git records only the
// executable bit.
func (r *Repo) WriteFileMode(path, content string, mode os.FileMode) {
	r.t.Helper()
	full := r.path(path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
	// Remove first so a mode change on an existing file takes effect.
	_ = os.Remove(full)
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
}

// Symlink creates a symbolic link at path pointing to target (stored by git
// as a symlink entry), without committing.
func (r *Repo) Symlink(path, target string) {
	r.t.Helper()
	full := r.path(path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
	_ = os.Remove(full)
	if err := os.Symlink(target, full); err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
}

// Remove deletes a file or directory tree from the working tree, without
// committing.
func (r *Repo) Remove(path string) {
	r.t.Helper()
	if err := os.RemoveAll(r.path(path)); err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
}

// CommitAll stages every change in the working tree and commits it (an
// empty commit when nothing changed). It returns the new commit's SHA.
func (r *Repo) CommitAll(msg string) string {
	r.t.Helper()
	r.Git("add", "-A")
	r.gitDated("commit", "-q", "--allow-empty", "--no-verify", "-m", msg)
	return r.Head()
}

// Commit writes files (relative slash paths to contents) and commits them
// together with any other pending change. It returns the commit's SHA.
func (r *Repo) Commit(msg string, files map[string]string) string {
	r.t.Helper()
	for p, c := range files {
		r.WriteFile(p, c)
	}
	return r.CommitAll(msg)
}

// Branch creates branch name at HEAD without switching to it.
func (r *Repo) Branch(name string) {
	r.t.Helper()
	r.Git("branch", name)
}

// Checkout switches the working tree and HEAD to rev: a branch name, or any
// other revision, which detaches HEAD.
func (r *Repo) Checkout(rev string) {
	r.t.Helper()
	r.Git("checkout", "-q", rev)
}

// Tag creates the lightweight tag name at HEAD.
func (r *Repo) Tag(name string) {
	r.t.Helper()
	r.Git("tag", name)
}

// AnnotatedTag creates the annotated tag name at HEAD and returns the SHA of
// the tag object, which differs from the commit it points to: code that
// should peel tags can be checked against RevParse(name+"^{commit}").
func (r *Repo) AnnotatedTag(name, msg string) string {
	r.t.Helper()
	r.gitDated("tag", "-a", name, "-m", msg)
	return r.RevParse("refs/tags/" + name)
}

// Head returns the SHA of the commit HEAD points to.
func (r *Repo) Head() string {
	r.t.Helper()
	return r.RevParse("HEAD")
}

// RevParse returns the 40-hex object name of rev, as `git rev-parse --verify`
// does; an annotated tag name gives the tag object, rev+"^{commit}" the commit.
func (r *Repo) RevParse(rev string) string {
	r.t.Helper()
	return r.Git("rev-parse", "--verify", "--end-of-options", rev)
}

// SetRefs creates or moves each ref (a full name such as "refs/tags/v1" or
// "refs/pull/7/head") to the given revision, all in one git run, so tests
// can build repositories with hundreds of refs quickly.
func (r *Repo) SetRefs(refs map[string]string) {
	r.t.Helper()
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "update %s %s\n", n, refs[n])
	}
	if _, err := run(r.t, r.Dir, nil, b.Bytes(), "update-ref", "--stdin"); err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
}

// AddSubmodule adds the repository at url (file://, http:// or a path) as a
// submodule at path and commits it, returning the commit's SHA. file URLs
// are allowed explicitly because git >= 2.38 refuses them by default.
func (r *Repo) AddSubmodule(path, url string) string {
	r.t.Helper()
	r.Git("-c", "protocol.file.allow=always", "submodule", "add", "-q", "--", url, path)
	return r.CommitAll("add submodule " + path)
}

// Commits appends n commits to the current branch in one git fast-import run
// (fast enough for thousands, for history-depth tests) and returns their
// SHAs, oldest first. Each rewrites commits.txt. The working tree is reset
// to the new tip, discarding uncommitted changes. HEAD must be on a branch.
func (r *Repo) Commits(n int) []string {
	r.t.Helper()
	if n <= 0 {
		return nil
	}
	branch := r.Git("symbolic-ref", "-q", "HEAD")
	parent, err := run(r.t, r.Dir, nil, nil, "rev-parse", "--verify", "-q", "HEAD")
	if err != nil {
		parent = "" // unborn branch: the first commit has no parent
	}

	r.mu.Lock()
	start := r.tick
	r.tick += int64(n)
	r.mu.Unlock()

	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		when := fmt.Sprintf("%d +0000", baseTime+60*(start+int64(i)-1))
		msg := fmt.Sprintf("commit %d", start+int64(i))
		content := fmt.Sprintf("%s\n", msg)
		fmt.Fprintf(&b, "commit %s\nmark :%d\n", branch, i)
		fmt.Fprintf(&b, "author %s <%s> %s\n", AuthorName, AuthorEmail, when)
		fmt.Fprintf(&b, "committer %s <%s> %s\n", AuthorName, AuthorEmail, when)
		fmt.Fprintf(&b, "data %d\n%s\n", len(msg), msg)
		if i == 1 && parent != "" {
			fmt.Fprintf(&b, "from %s\n", parent)
		}
		fmt.Fprintf(&b, "M 100644 inline commits.txt\ndata %d\n%s\n", len(content), content)
	}
	b.WriteString("done\n")

	marks := filepath.Join(r.t.TempDir(), "marks")
	if _, err := run(r.t, r.Dir, nil, b.Bytes(), "fast-import", "--quiet", "--done", "--export-marks="+marks); err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
	r.Git("reset", "-q", "--hard", "HEAD")

	data, err := os.ReadFile(marks)
	if err != nil {
		r.t.Fatalf("gittest: read fast-import marks: %v", err)
	}
	shas := make([]string, n)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		mark, sha, ok := strings.Cut(line, " ")
		idx, err := strconv.Atoi(strings.TrimPrefix(mark, ":"))
		if !ok || err != nil || idx < 1 || idx > n {
			r.t.Fatalf("gittest: bad fast-import mark line %q", line)
		}
		shas[idx-1] = sha
	}
	return shas
}

// gitDated runs a git command that records a date, with the next fixed date.
func (r *Repo) gitDated(args ...string) string {
	r.t.Helper()
	r.mu.Lock()
	when := fmt.Sprintf("%d +0000", baseTime+60*r.tick)
	r.tick++
	r.mu.Unlock()
	out, err := run(r.t, r.Dir, []string{"GIT_AUTHOR_DATE=" + when, "GIT_COMMITTER_DATE=" + when}, nil, args...)
	if err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
	return out
}

// path maps a relative slash path into the working tree, refusing paths that
// would escape it so a typo in a test cannot write outside its temp dir.
func (r *Repo) path(rel string) string {
	r.t.Helper()
	clean := filepath.Clean(filepath.FromSlash(rel))
	if rel == "" || filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		r.t.Fatalf("gittest: path %q must be relative and stay inside the repository", rel)
	}
	return filepath.Join(r.Dir, clean)
}
