package gitsrc

import (
	"context"
	"strings"

	"github.com/rs/zerolog"
)

// Trees puts commits' trees at destinations from the shared git cache: the
// shape realize asks for. The caller owns dest (realize writes into a
// build directory no other process writes), which makes removing an
// interrupted export's leftovers safe.
type Trees struct {
	Client   *Client
	CacheDir string
	Logger   zerolog.Logger
}

// Tree fetches commit of url (ref is the fallback when the server refuses
// fetches by SHA) and exports it, with submodules, to dest. When the cache
// repository went away while it was read (a gc --git on another host), it
// is fetched again once.
func (t *Trees) Tree(ctx context.Context, url, ref, commit, dest string) error {
	if err := RemoveStaleExports(dest); err != nil {
		t.Logger.Warn().Err(err).Str("dest", dest).Msg("removing leftovers of an interrupted export")
	}
	req := FetchRequest{CacheDir: t.CacheDir, URL: url, Commit: commit, Ref: ref}
	opts := ExportOptions{
		Logger: t.Logger,
		// A local repository may use local submodules; a remote one may
		// not make the worker copy local files.
		Submodules: SubmoduleOptions{AllowLocal: strings.HasPrefix(url, "file://") || strings.HasPrefix(url, "/")},
	}
	_, err := t.Client.Materialize(ctx, req, dest, opts)
	if err != nil && ctx.Err() == nil && t.repoGone(req) {
		t.Logger.Warn().Str("url", RedactURL(url)).Msg("the cached repository went away while it was read; fetching it again")
		_, err = t.Client.Materialize(ctx, req, dest, opts)
	}
	return err
}

// repoGone reports whether req's commit is no longer complete in the cache.
func (t *Trees) repoGone(req FetchRequest) bool {
	dir, err := RepoDir(req.CacheDir, req.URL)
	h, perr := parseCommit(req.Commit)
	if err != nil || perr != nil {
		return false
	}
	complete, _ := present(dir, h)
	return !complete
}
