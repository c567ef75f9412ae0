package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/pkg/cache"
)

// DefaultListTimeout bounds one listing when Options.ListTimeout is zero.
const DefaultListTimeout = 60 * time.Second

// Credential is HTTP basic authentication for one host, for private
// repositories. It is sent only to URLs (after rewriting) on Host, never
// logged, and scrubbed from error text.
type Credential struct {
	// Host is matched case-insensitively against the URL's host, with or
	// without port: "github.com", "127.0.0.1:8080".
	Host string
	// Username defaults to "x-access-token", which GitHub accepts with a
	// personal access or app token.
	Username string
	// Token is the password.
	Token string
}

// Options configure a Client. The zero value is usable.
type Options struct {
	// Rewrites are applied to every URL before it is contacted.
	Rewrites []Rewrite
	// Credentials are offered per host to http(s) URLs that carry no
	// userinfo of their own.
	Credentials []Credential
	// Logger receives debug lines per listing and warnings; default: none.
	Logger zerolog.Logger
	// ListTimeout bounds one listing; default DefaultListTimeout.
	ListTimeout time.Duration
	// Offline forbids network access: Fetch serves only cached commits and
	// ListRefs fails, both with an error matching ErrOffline.
	Offline bool
	// CacheDir is the git cache (<cache>/git). With it, Resolve expands an
	// abbreviated commit that is no ref tip by fetching the repository's
	// history there; without it only ref tips can be abbreviated.
	CacheDir string
	// Locks make processes on one host fetch a repository once (an
	// optimisation: across hosts the cache needs none).
	Locks cache.Locks
	// Lease times the private repositories fetches fill; zero fields take
	// cache.DefaultLease.
	Lease cache.Lease
}

// Client talks to remote git repositories with go-git. It is safe for
// concurrent use.
type Client struct {
	rewrites    []Rewrite
	credentials []Credential
	log         zerolog.Logger
	listTimeout time.Duration
	offline     bool
	cacheDir    string
	locks       cache.Locks
	lease       cache.Lease
}

// NewClient returns a Client configured by opts.
func NewClient(opts Options) *Client {
	c := &Client{
		rewrites:    append([]Rewrite(nil), opts.Rewrites...),
		credentials: append([]Credential(nil), opts.Credentials...),
		log:         opts.Logger,
		listTimeout: opts.ListTimeout,
		offline:     opts.Offline,
		cacheDir:    opts.CacheDir,
		locks:       opts.Locks,
		lease:       opts.Lease.OrDefault(),
	}
	if c.listTimeout <= 0 {
		c.listTimeout = DefaultListTimeout
	}
	return c
}

// RewriteURL returns the URL that is contacted for rawURL.
func (c *Client) RewriteURL(rawURL string) string {
	return rewriteURL(c.rewrites, rawURL)
}

// Resolve lists url's refs and resolves ref in them (see Refs.Resolve). A
// full 40-hex SHA is returned as is without contacting the remote: a
// listing only shows ref tips, so it could not confirm the commit anyway.
func (c *Client) Resolve(ctx context.Context, url, ref string) (string, error) {
	if len(ref) == 40 && isHex(ref) {
		return strings.ToLower(ref), nil
	}
	refs, err := c.ListRefs(ctx, url)
	if err != nil {
		return "", err
	}
	sha, err := refs.Resolve(ref)
	var nf *RefNotFoundError
	if errors.As(err, &nf) && nf.Abbrev && c.cacheDir != "" {
		full, xerr := c.expandFromHistory(ctx, url, ref)
		switch {
		case xerr != nil:
			return "", xerr
		case full != "":
			return full, nil
		}
	}
	return sha, err
}

// ListRefs lists the refs of the repository at rawURL without cloning it
// (`git ls-remote`): one request to the server's ref advertisement.
// Annotated tags are peeled. An empty repository gives empty Refs. Errors
// name rawURL (and the rewritten URL) with credentials redacted; test them
// with errors.Is against ErrRepoNotFound, ErrAuth, context.Canceled and
// context.DeadlineExceeded.
func (c *Client) ListRefs(ctx context.Context, rawURL string) (*Refs, error) {
	target := c.RewriteURL(rawURL)
	display := RedactURL(rawURL)
	if target != rawURL {
		display += " (rewritten to " + RedactURL(target) + ")"
	}
	secrets := append(secretsOf(rawURL), secretsOf(target)...)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list refs of %s: %w", display, err)
	}
	if c.offline {
		return nil, fmt.Errorf("list refs of %s: %w: pin a full commit SHA in the lock, or run once without offline mode", display, ErrOffline)
	}

	ep, err := transport.NewEndpoint(target)
	if err != nil {
		return nil, c.listError(ctx, ctx, display, secrets, fmt.Errorf("invalid repository URL: %w", err))
	}
	auth, authSecret := c.authFor(ep)
	if authSecret != "" {
		secrets = append(secrets, authSecret)
	}
	cli, err := client.NewClient(ep)
	if err != nil {
		return nil, c.listError(ctx, ctx, display, secrets, err)
	}

	lctx, cancel := context.WithTimeout(ctx, c.listTimeout)
	defer cancel()
	start := time.Now()
	c.log.Debug().Str("url", display).Msg("listing refs")
	ar, err := advertisedRefs(lctx, cli, ep, auth)
	refs := &Refs{
		URL:      RedactURL(rawURL),
		Branches: map[string]string{},
		Tags:     map[string]string{},
		Other:    map[string]string{},
		log:      c.log,
	}
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		c.log.Debug().Str("url", display).Msg("repository is empty")
		return refs, nil
	case err != nil:
		return nil, c.listError(ctx, lctx, display, secrets, err)
	}

	fillRefs(refs, ar)
	c.log.Debug().Str("url", display).Str("head", refs.Head).Int("branches", len(refs.Branches)).
		Int("tags", len(refs.Tags)).Int64("elapsed_ms", time.Since(start).Milliseconds()).Msg("listed refs")
	return refs, nil
}

// advertisedRefs asks the server for its ref advertisement. The transport is
// used directly rather than git.Remote.List: it exposes HEAD's own SHA (so
// a detached HEAD works) and the peeled value of every annotated tag.
func advertisedRefs(ctx context.Context, cli transport.Transport, ep *transport.Endpoint, auth transport.AuthMethod) (ar *advRefs, err error) {
	sess, err := cli.NewUploadPackSession(ep, auth)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := sess.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return sess.AdvertisedReferencesContext(ctx)
}

// advRefs is go-git's decoded ref advertisement.
type advRefs = packp.AdvRefs

func fillRefs(refs *Refs, ar *advRefs) {
	for name, hash := range ar.References {
		sha := hash.String()
		if p, ok := ar.Peeled[name]; ok {
			sha = p.String()
		}
		switch {
		case name == "HEAD":
		case strings.HasPrefix(name, "refs/heads/"):
			refs.Branches[strings.TrimPrefix(name, "refs/heads/")] = sha
		case strings.HasPrefix(name, "refs/tags/"):
			refs.Tags[strings.TrimPrefix(name, "refs/tags/")] = sha
		default:
			refs.Other[name] = sha
		}
	}
	for _, sym := range ar.Capabilities.Get(capability.SymRef) {
		if from, to, ok := strings.Cut(sym, ":"); ok && from == "HEAD" {
			refs.HeadBranch = strings.TrimPrefix(to, "refs/heads/")
		}
	}
	switch {
	case ar.Head != nil:
		refs.Head = ar.Head.String()
	case refs.HeadBranch != "":
		refs.Head = refs.Branches[refs.HeadBranch]
	}
}

// authFor picks credentials for an http(s) endpoint without userinfo of its
// own (go-git uses the URL's userinfo itself). It also returns the secret
// to scrub from errors.
func (c *Client) authFor(ep *transport.Endpoint) (transport.AuthMethod, string) {
	if ep.Protocol != "http" && ep.Protocol != "https" || ep.User != "" {
		return nil, ""
	}
	host := strings.ToLower(ep.Host)
	hostPort := host
	if ep.Port != 0 {
		hostPort = fmt.Sprintf("%s:%d", host, ep.Port)
	}
	for _, cr := range c.credentials {
		h := strings.ToLower(cr.Host)
		if cr.Token == "" || (h != host && h != hostPort) {
			continue
		}
		user := cr.Username
		if user == "" {
			user = "x-access-token"
		}
		return &githttp.BasicAuth{Username: user, Password: cr.Token}, cr.Token
	}
	return nil, ""
}

// listError builds the error for a failed listing: the URL, what went wrong
// in words a user can act on, and the causes for errors.Is. parent is the
// caller's context, lctx the one bounded by the list timeout.
func (c *Client) listError(parent, lctx context.Context, display string, secrets []string, err error) error {
	var msg string
	errs := []error{err}
	switch {
	case parent.Err() != nil:
		msg = parent.Err().Error()
		errs = append(errs, parent.Err())
	case lctx.Err() != nil:
		msg = fmt.Sprintf("no answer within %s (%v)", c.listTimeout, lctx.Err())
		errs = append(errs, lctx.Err())
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
	default:
		msg = err.Error()
	}
	c.log.Debug().Str("url", display).Str("error", scrub(msg, secrets)).Msg("listing refs failed")
	return &scrubbedError{msg: scrub("list refs of "+display+": "+msg, secrets), errs: errs}
}
