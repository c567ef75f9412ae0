package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// expandFromHistory expands an abbreviated commit that is no ref tip, as
// `git rev-parse` would in a clone: it fetches every branch and tag with
// full history into the cache repository of url (the same one realize
// fetches into, so the work is not lost; published like every fetch, see
// publish.go) and looks the prefix up among its commits. A commit that only an unadvertised ref reaches is not found.
func (c *Client) expandFromHistory(ctx context.Context, url, abbrev string) (string, error) {
	dir, err := RepoDir(c.cacheDir, url)
	if err != nil {
		return "", err
	}
	rem := c.remoteFor(url)
	unlock, err := c.lockRepo(ctx, dir, rem.display)
	if err != nil {
		return "", fmt.Errorf("expand %s in %s: %w", abbrev, rem.display, err)
	}
	defer unlock()
	cleanStale(dir, c.lease.Expiry)
	prefix := strings.ToLower(abbrev)
	if st, err := openStore(dir); err == nil {
		found := commitsWithPrefix(st, prefix)
		_ = st.Close()
		if len(found) == 1 {
			return found[0], nil
		}
	}
	c.log.Info().Str("url", rem.display).Str("commit", abbrev).Msg("abbreviated commit is no ref tip; fetching the repository's history to expand it")
	_, err = c.fetchPrivately(ctx, dir, plumbing.ZeroHash, func(st *store) error {
		err := c.gitFetch(ctx, st, rem, 0, "+refs/heads/*:refs/fetch/heads/*", "+refs/tags/*:refs/fetch/tags/*")
		if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return fmt.Errorf("expand %s: fetch history of %s: %w", abbrev, rem.display, scrubErr(err, rem.secrets))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	st, err := openStore(dir)
	if err != nil {
		return "", fmt.Errorf("open cache repository for %s: %w", rem.display, err)
	}
	defer st.Close()
	switch found := commitsWithPrefix(st, prefix); len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	default:
		return "", &AmbiguousRefError{URL: rem.display, Ref: abbrev, Matches: found}
	}
}

// commitsWithPrefix lists the commits in st whose SHA starts with prefix.
func commitsWithPrefix(st *store, prefix string) []string {
	iter, err := st.IterEncodedObjects(plumbing.CommitObject)
	if err != nil {
		return nil
	}
	defer iter.Close()
	var found []string
	_ = iter.ForEach(func(o plumbing.EncodedObject) error {
		if h := o.Hash().String(); strings.HasPrefix(h, prefix) {
			found = append(found, h)
		}
		return nil
	})
	sort.Strings(found)
	return slices.Compact(found)
}
