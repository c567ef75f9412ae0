package gitsrc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// FetchPath says how a commit reached the cache.
type FetchPath string

const (
	// PathCached: the commit was already in the cache; no network access.
	PathCached FetchPath = "cached"
	// PathSHA: fetched by its SHA at depth 1 (servers that allow it, like
	// GitHub): one commit, its tree and blobs.
	PathSHA FetchPath = "sha-depth1"
	// PathRef: the server refused a fetch by SHA and the commit is a ref
	// tip, fetched at depth 1.
	PathRef FetchPath = "ref-depth1"
	// PathFull: the commit is behind the tips: the ref was deepened step
	// by step to its full history, then every branch and tag was fetched.
	PathFull FetchPath = "full"
)

// deepenSteps are the depths tried on the requested ref before its whole
// history: a pin a few commits behind a branch tip costs a small fetch,
// not the project's full history.
var deepenSteps = []int{64, 1024}

// infiniteDepth is git's "deepen 2147483647" (what --unshallow sends). A
// full fetch into a shallow repository needs it rather than depth 0: only
// with a depth does the request list our shallow commits, and without
// them the server assumes we hold their ancestors and leaves them out.
const infiniteDepth = 1<<31 - 1

// FetchRequest names a commit to bring into the cache.
type FetchRequest struct {
	// CacheDir is the root of the git cache (<cache>/git); the repository
	// lives at RepoDir(CacheDir, URL).
	CacheDir string
	// URL is the repository as the user wrote it. Its cache key is taken
	// before Options.Rewrites apply; the rewritten URL is the one fetched.
	URL string
	// Commit is the full 40-hex commit SHA.
	Commit string
	// Ref is the branch or tag the commit was resolved from ("" for HEAD).
	// It is used only when the server refuses to serve a commit by SHA.
	Ref string
}

// FetchResult is where a fetched commit is.
type FetchResult struct {
	// RepoDir is the bare repository holding the commit; give it to Export.
	RepoDir string
	// Commit is the commit, lowercase.
	Commit string
	// Path says how the commit got there.
	Path FetchPath
}

// Fetch makes sure Commit, its tree and blobs are in the cache repository of
// URL and pins it there (refs/pins/<sha>). A commit already present costs no
// network access. Otherwise it is fetched by SHA at depth 1; a server that
// refuses that gets the ref instead, at depth 1 when the commit is a tip,
// then deeper. The path taken is logged at Info ("git fetch path=...").
//
// A fetch fills a private repository next to the cache's and publishes its
// objects, then the pin, each by a rename (see publish.go), so hosts that
// share the cache need no lock and readers never see half a commit. On one
// host, fetches of one repository take turns on a lock file next to it, so
// the second finds the first one's work; different repositories fetch in
// parallel. A fetch killed at any point leaves nothing the next Fetch
// trips on, and a repository found damaged is replaced by a new one.
//
// Errors name the URL with credentials redacted. A commit the server does
// not have is a *CommitNotFoundError; see also ErrRepoNotFound, ErrAuth and
// the context's errors.
func (c *Client) Fetch(ctx context.Context, req FetchRequest) (*FetchResult, error) {
	commit, err := parseCommit(req.Commit)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", RedactURL(req.URL), err)
	}
	if req.CacheDir == "" {
		return nil, fmt.Errorf("fetch %s: no cache directory given", RedactURL(req.URL))
	}
	dir, err := RepoDir(req.CacheDir, req.URL)
	if err != nil {
		return nil, err
	}
	rem := c.remoteFor(req.URL)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", commit, rem.display, err)
	}
	res := &FetchResult{RepoDir: dir, Commit: commit.String(), Path: PathCached}

	// Lock-free fast path: packs and refs only ever appear whole, so a
	// reader never sees a commit whose tree is still arriving.
	complete, pinned := present(dir, commit)
	if complete && pinned {
		c.log.Debug().Str("url", rem.display).Str("commit", res.Commit).Msg("commit already cached")
		// The repository's last use, which gc --git goes by.
		_ = fsutil.TouchIfOlder(dir, time.Hour)
		return res, nil
	}

	if c.offline && !complete {
		return nil, fmt.Errorf("fetch %s from %s: the commit is not in the git cache (%s) and %w: "+
			"run once without offline mode to fill the cache", commit, rem.display, dir, ErrOffline)
	}

	unlock, err := c.lockRepo(ctx, dir, rem.display)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", commit, rem.display, err)
	}
	defer unlock()
	cleanStale(dir, c.lease.Expiry)

	start := time.Now()
	path, err := c.fetchLocked(ctx, dir, commit, req.Ref, rem)
	if err != nil {
		return nil, err
	}
	res.Path = path
	if path != PathCached {
		c.log.Info().Str("url", rem.display).Str("commit", res.Commit).Str("path", string(path)).
			Int64("elapsed_ms", time.Since(start).Milliseconds()).Msg("git fetch")
	}
	return res, nil
}

func parseCommit(s string) (plumbing.Hash, error) {
	if len(s) != 40 || !isHex(s) {
		return plumbing.ZeroHash, fmt.Errorf("commit %q is not a full 40-hex SHA (resolve the ref first)", s)
	}
	return plumbing.NewHash(strings.ToLower(s)), nil
}

// present reports, without locking, whether dir holds commit completely and
// whether a pin keeps it there.
func present(dir string, commit plumbing.Hash) (complete, pinned bool) {
	st, err := openStore(dir)
	if err != nil {
		return false, false
	}
	defer st.Close()
	return st.hasCommit(commit), st.pinned(commit)
}

// fetchLocked brings commit into dir: a pin when dir already holds it,
// else a fetch into a private repository published into dir (see
// publish.go), which also replaces a damaged dir.
func (c *Client) fetchLocked(ctx context.Context, dir string, commit plumbing.Hash, ref string, rem *remoteTarget) (FetchPath, error) {
	// Another process may have fetched it while we waited for the lock, or
	// it came with an earlier fetch's history and only needs its pin.
	if st, err := openStore(dir); err == nil {
		has := st.hasCommit(commit)
		if has {
			err = st.pin(commit)
		}
		_ = st.Close()
		if has {
			if err != nil {
				return "", fmt.Errorf("pin %s in %s: %w", commit, dir, err)
			}
			return PathCached, nil
		}
	}
	var path FetchPath
	var fetchErr error
	replaced, err := c.fetchPrivately(ctx, dir, commit, func(st *store) error {
		path, fetchErr = c.fetchSteps(ctx, st, commit, ref, rem)
		return fetchErr
	})
	if fetchErr != nil {
		return "", fetchErr // worded for the user by fetchSteps
	}
	if err != nil {
		return "", fmt.Errorf("fetch %s from %s: record in %s: %w", commit, rem.display, dir, err)
	}
	if replaced {
		c.log.Warn().Str("url", rem.display).Str("dir", dir).Msg("cache repository was damaged; re-creating it")
	}
	return path, nil
}
