package gitsrc

import (
	"context"
	"strings"

	"github.com/rs/zerolog"
)

// Trees puts commits' trees at destinations from the shared git cache: the
// shape realize asks for. It must be used under the caller's lock on dest
// (realize holds the build lock), which makes removing an interrupted
// export's leftovers safe.
type Trees struct {
	Client   *Client
	CacheDir string
	Logger   zerolog.Logger
}

// Tree fetches commit of url (ref is the fallback when the server refuses
// fetches by SHA) and exports it, with submodules, to dest.
func (t *Trees) Tree(ctx context.Context, url, ref, commit, dest string) error {
	if err := RemoveStaleExports(dest); err != nil {
		t.Logger.Warn().Err(err).Str("dest", dest).Msg("removing leftovers of an interrupted export")
	}
	_, err := t.Client.Materialize(ctx, FetchRequest{CacheDir: t.CacheDir, URL: url, Commit: commit, Ref: ref}, dest, ExportOptions{
		Logger: t.Logger,
		// A local repository may use local submodules; a remote one may
		// not make the worker copy local files.
		Submodules: SubmoduleOptions{AllowLocal: strings.HasPrefix(url, "file://") || strings.HasPrefix(url, "/")},
	})
	return err
}
