package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// remoteTarget is a repository URL ready for network access: rewritten,
// with credentials chosen, and the secrets to scrub from any message.
type remoteTarget struct {
	raw, target, display string
	auth                 transport.AuthMethod
	secrets              []string
}

func (c *Client) remoteFor(rawURL string) *remoteTarget {
	r := &remoteTarget{raw: rawURL, target: c.RewriteURL(rawURL), display: RedactURL(rawURL)}
	if r.target != rawURL {
		r.display += " (rewritten to " + RedactURL(r.target) + ")"
	}
	r.secrets = append(secretsOf(rawURL), secretsOf(r.target)...)
	if ep, err := transport.NewEndpoint(r.target); err == nil {
		var secret string
		if r.auth, secret = c.authFor(ep); secret != "" {
			r.secrets = append(r.secrets, secret)
		}
	}
	return r
}

// fetchSteps tries the ways to get commit, cheapest first, and says which
// one worked.
func (c *Client) fetchSteps(ctx context.Context, st *store, commit plumbing.Hash, ref string, rem *remoteTarget) (FetchPath, error) {
	sha := commit.String()
	log := c.log.With().Str("url", rem.display).Str("commit", sha).Logger()

	err := c.gitFetch(ctx, st, rem, 1, sha+":"+pinPrefix+sha)
	if err == nil && st.hasCommit(commit) {
		return PathSHA, nil
	}
	if err != nil && !worthFallingBack(ctx, err) {
		return "", c.fetchError(ctx, rem, commit, err)
	}
	if errors.Is(err, git.ErrExactSHA1NotSupported) {
		log.Debug().Msg("server does not allow fetching a commit by SHA; fetching a ref instead")
	} else {
		log.Debug().Err(scrubErr(err, rem.secrets)).Msg("fetch by SHA failed; fetching a ref instead")
	}

	// Which refs to fetch depends on the listing: one request, and it
	// tells whether the commit is a tip (depth 1 suffices) or not.
	refs, err := c.ListRefs(ctx, rem.raw)
	if err != nil {
		return "", err
	}
	if tip := tipRef(refs, sha); tip != "" {
		log.Debug().Str("ref", tip).Msg("commit is a ref tip; fetching it at depth 1")
		if err := c.gitFetch(ctx, st, rem, 1, "+"+tip+":refs/fetch/tip"); err != nil && !worthFallingBack(ctx, err) {
			return "", c.fetchError(ctx, rem, commit, err)
		}
		if st.hasCommit(commit) {
			return PathRef, nil
		}
	}

	if name := refName(refs, ref); name != "" {
		for _, depth := range c.depthPlan(st) {
			log.Debug().Str("ref", name).Str("depth", depthString(depth)).Msg("deepening ref")
			if err := c.gitFetch(ctx, st, rem, c.fullDepth(st, depth), "+"+name+":refs/fetch/ref"); err != nil {
				if !worthFallingBack(ctx, err) {
					return "", c.fetchError(ctx, rem, commit, err)
				}
				break
			}
			if st.hasCommit(commit) {
				return PathFull, nil
			}
		}
	}

	log.Debug().Msg("fetching every branch and tag")
	err = c.gitFetch(ctx, st, rem, c.fullDepth(st, 0), "+refs/heads/*:refs/fetch/heads/*", "+refs/tags/*:refs/fetch/tags/*")
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		// The last resort failed, so the server never said the commit is
		// absent: report why, not a misleading "not found".
		return "", c.fetchError(ctx, rem, commit, err)
	}
	if st.hasCommit(commit) {
		return PathFull, nil
	}
	return "", &CommitNotFoundError{URL: rem.display, Commit: sha, Ref: ref}
}

// depthPlan lists the depths to try on the ref. Deepening pays off from a
// shallow or empty repository; one with full history gets just the missing
// part in a single full fetch.
func (c *Client) depthPlan(st *store) []int {
	shallows, _ := st.Shallow()
	if len(shallows) == 0 && len(st.packFiles()) > 0 {
		return []int{0}
	}
	return append(append([]int(nil), deepenSteps...), 0)
}

// fullDepth turns depth 0 ("all history") into infiniteDepth when the store
// is shallow; see infiniteDepth.
func (c *Client) fullDepth(st *store, depth int) int {
	if depth != 0 {
		return depth
	}
	if shallows, err := st.Shallow(); err == nil && len(shallows) == 0 {
		return 0
	}
	return infiniteDepth
}

func depthString(d int) string {
	if d == 0 {
		return "all"
	}
	return strconv.Itoa(d)
}

// gitFetch runs one go-git fetch of refspecs from the remote into st.
func (c *Client) gitFetch(ctx context.Context, st *store, rem *remoteTarget, depth int, refspecs ...string) error {
	specs := make([]config.RefSpec, len(refspecs))
	for i, s := range refspecs {
		specs[i] = config.RefSpec(s)
	}
	r := git.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{rem.target}})
	err := r.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: specs,
		Depth:    depth,
		Auth:     rem.auth,
		Tags:     git.NoTags,
		Force:    true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// worthFallingBack: a refused SHA, a vanished ref or a server hiccup may be
// cured by another way of fetching; a cancelled context, missing
// credentials or a missing repository will not.
func worthFallingBack(ctx context.Context, err error) bool {
	return ctx.Err() == nil &&
		!errors.Is(err, transport.ErrAuthenticationRequired) &&
		!errors.Is(err, transport.ErrAuthorizationFailed) &&
		!errors.Is(err, transport.ErrRepositoryNotFound)
}

// tipRef returns a ref whose tip is sha, preferring HEAD, then branches,
// then tags, then anything else; "" when there is none.
func tipRef(refs *Refs, sha string) string {
	if refs.Head == sha {
		return "HEAD"
	}
	for _, group := range []struct {
		prefix string
		m      map[string]string
	}{{"refs/heads/", refs.Branches}, {"refs/tags/", refs.Tags}, {"", refs.Other}} {
		for _, n := range sortedKeys(group.m) {
			if group.m[n] == sha {
				return group.prefix + n
			}
		}
	}
	return ""
}

// refName turns the spec's ref into the full name to fetch, the way
// Refs.Resolve reads it (branches before tags); "" when it names no ref.
func refName(refs *Refs, ref string) string {
	switch {
	case ref == "" || ref == "HEAD":
		if refs.Head == "" {
			return ""
		}
		return "HEAD"
	case len(ref) > 5 && ref[:5] == "refs/":
		if _, ok := refs.full(ref); ok {
			return ref
		}
	default:
		if _, ok := refs.Branches[ref]; ok {
			return "refs/heads/" + ref
		}
		if _, ok := refs.Tags[ref]; ok {
			return "refs/tags/" + ref
		}
	}
	return ""
}

// fetchError words a failed fetch for the user, keeping the causes for
// errors.Is, with every secret scrubbed.
func (c *Client) fetchError(ctx context.Context, rem *remoteTarget, commit plumbing.Hash, err error) error {
	msg := err.Error()
	errs := []error{err}
	switch {
	case ctx.Err() != nil:
		msg = ctx.Err().Error()
		errs = append(errs, ctx.Err())
	case errors.Is(err, transport.ErrRepositoryNotFound):
		msg = "repository not found: check the URL (a private repository also needs credentials)"
		errs = append(errs, ErrRepoNotFound)
	case errors.Is(err, transport.ErrAuthenticationRequired):
		msg = "the server asks for credentials: the repository is private or does not exist; " +
			"check the URL or configure a token for this host"
		errs = append(errs, ErrAuth)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		msg = "the credentials were refused: check the token and its access to this repository"
		errs = append(errs, ErrAuth)
	}
	return &scrubbedError{msg: scrub(fmt.Sprintf("fetch %s from %s: %s", commit, rem.display, msg), rem.secrets), errs: errs}
}

// scrubErr is err with secrets removed from its text, for logging.
func scrubErr(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{msg: scrub(err.Error(), secrets), errs: []error{err}}
}
