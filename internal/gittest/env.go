// Package gittest builds real git repositories with the git CLI and serves
// them over git's smart HTTP protocol, so tests of code that lists, fetches
// or clones exercise the same wire protocol GitHub speaks instead of a fake.
//
// Everything is hermetic: the user's global and system git configuration is
// ignored, and author, committer and dates are fixed, so the same sequence of
// calls produces the same commit SHAs on every machine and every run.
//
// Helpers report failures with t.Fatalf and must therefore be called from the
// test's own goroutine. The served repositories may be read concurrently.
package gittest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Identity used for every commit and tag, so SHAs are reproducible.
const (
	AuthorName  = "Git Test"
	AuthorEmail = "gittest@example.com"
)

// baseTime is the author/committer time of a repo's first commit (2024-01-01
// UTC); each later commit or annotated tag is one minute later.
const baseTime int64 = 1704067200

var (
	gitPathOnce sync.Once
	gitPath     string
	gitPathErr  error
)

// GitPath returns the git executable, failing the test when git is missing:
// these helpers are pointless without it and a skip would hide real gaps.
func GitPath(t testing.TB) string {
	t.Helper()
	gitPathOnce.Do(func() { gitPath, gitPathErr = exec.LookPath("git") })
	if gitPathErr != nil {
		t.Fatalf("gittest: git CLI not found on PATH: %v (install git)", gitPathErr)
	}
	return gitPath
}

// Environ returns the environment for git commands: the process environment
// minus anything that could leak the user's git setup (GIT_*, locale), plus
// a hermetic configuration and the fixed identity. extra entries
// ("KEY=value") are appended last and so take precedence.
func Environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GIT_") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
		"GIT_AUTHOR_NAME="+AuthorName,
		"GIT_AUTHOR_EMAIL="+AuthorEmail,
		"GIT_COMMITTER_NAME="+AuthorName,
		"GIT_COMMITTER_EMAIL="+AuthorEmail,
	)
	return append(env, extra...)
}

// Git runs the git CLI in dir with the hermetic environment and returns its
// trimmed stdout. A non-zero exit fails the test with git's stderr.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := run(t, dir, nil, nil, args...)
	if err != nil {
		t.Fatalf("gittest: %v", err)
	}
	return out
}

// run is Git with extra environment and stdin, returning the error instead
// of failing so callers can add context.
func run(t testing.TB, dir string, extraEnv []string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(GitPath(t), args...)
	cmd.Dir = dir
	cmd.Env = Environ(extraEnv...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", &gitError{args: args, dir: dir, err: err, stderr: stderr.String()}
	}
	return strings.TrimSpace(stdout.String()), nil
}

type gitError struct {
	args   []string
	dir    string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	return "git " + strings.Join(e.args, " ") + " (in " + e.dir + "): " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}

func (e *gitError) Unwrap() error { return e.err }
