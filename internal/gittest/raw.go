package gittest

import (
	"bytes"
	"encoding/hex"
	"fmt"
)

// Tree entry modes as git writes them.
const (
	ModeFile    = "100644"
	ModeExec    = "100755"
	ModeSymlink = "120000"
	ModeDir     = "40000"
	ModeGitlink = "160000"
)

// RawEntry is one entry of a tree built by CommitRaw. Names and modes are
// written as given, unchecked, so tests can build the trees a malicious
// server could send (names like "..", "a/b" or ".git", duplicates).
type RawEntry struct {
	Mode string
	Name string
	// Content is a file's content or a symlink's target.
	Content string
	// Entries are a directory's entries (Mode ModeDir).
	Entries []RawEntry
	// SHA is a gitlink's commit (Mode ModeGitlink).
	SHA string
}

// CommitRaw writes entries as a tree with `git hash-object --literally`,
// which skips git's own checks, commits it on top of HEAD (or as a root
// commit on an unborn branch) and moves the current branch to it. It
// returns the commit's SHA. The working tree is left alone.
func (r *Repo) CommitRaw(msg string, entries []RawEntry) string {
	r.t.Helper()
	tree := r.rawTree(entries)
	args := []string{"commit-tree", tree, "-m", msg}
	if parent, err := run(r.t, r.Dir, nil, nil, "rev-parse", "--verify", "-q", "HEAD"); err == nil {
		args = append(args, "-p", parent)
	}
	sha := r.gitDated(args...)
	r.Git("update-ref", "HEAD", sha)
	return sha
}

func (r *Repo) rawTree(entries []RawEntry) string {
	r.t.Helper()
	var buf bytes.Buffer
	for _, e := range entries {
		var sha string
		switch e.Mode {
		case ModeDir:
			sha = r.rawTree(e.Entries)
		case ModeGitlink:
			sha = e.SHA
		default:
			sha = r.hashObject("blob", []byte(e.Content))
		}
		raw, err := hex.DecodeString(sha)
		if err != nil || len(raw) != 20 {
			r.t.Fatalf("gittest: bad object id %q for %q", sha, e.Name)
		}
		fmt.Fprintf(&buf, "%s %s\x00", e.Mode, e.Name)
		buf.Write(raw)
	}
	return r.hashObject("tree", buf.Bytes())
}

func (r *Repo) hashObject(typ string, data []byte) string {
	r.t.Helper()
	out, err := run(r.t, r.Dir, nil, data, "hash-object", "--literally", "-t", typ, "-w", "--stdin")
	if err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
	return out
}
