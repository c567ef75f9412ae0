// Package urlfetch downloads a job's URL inputs (input images, workflow_url)
// from https:// URLs and gs:// URIs, with a size limit, a deadline, and a
// guard that keeps a job from reaching the worker's own network: loopback,
// private, link-local and cloud metadata addresses are refused unless the
// operator allows them, checked on the address actually connected to, on
// every redirect.
//
// Private ranges (RFC 1918, 100.64.0.0/10, fc00::/7) are refused by default
// too: on a cloud GPU host they lead to the provider's internal services,
// not to anything a job's author should read. Operators who serve inputs
// from an internal host list it in AllowedHosts or set AllowPrivate.
package urlfetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// Defaults for Config's zero fields.
const (
	DefaultMaxBytes     = 256 << 20
	DefaultTimeout      = 2 * time.Minute
	DefaultMaxRedirects = 5
	DefaultUserAgent    = "runpod-comfy-worker"
)

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Fetcher.
type Config struct {
	// MaxBytes is the most one fetch may return (0: DefaultMaxBytes).
	MaxBytes int64
	// Timeout bounds a whole fetch, body included (0: DefaultTimeout).
	Timeout time.Duration
	// MaxRedirects followed (0: DefaultMaxRedirects; negative: none).
	MaxRedirects int
	// AllowHTTP permits plain http:// (https:// only otherwise).
	AllowHTTP bool
	// Guard exceptions, each off by default.
	AllowLoopback, AllowPrivate, AllowLinkLocal, AllowMetadata bool
	// AllowedHosts skip the address guard: "host" exactly, or ".domain" /
	// "*.domain" for its subdomains.
	AllowedHosts []string
	// Hints replace the default "how to allow it" text of a refusal, so
	// the wiring can name its own settings (an environment variable).
	Hints map[Class]string
	// GCS reads gs:// URIs; nil refuses them with an explanation.
	GCS *storage.Client
	// GCSBuckets, when set, are the only buckets gs:// inputs may name:
	// the worker's credentials may read more than jobs should.
	GCSBuckets []string
	// Resolver replaces DNS (tests; split-horizon setups).
	Resolver  Resolver
	TLSConfig *tls.Config
	UserAgent string
	Logger    zerolog.Logger
}

// Fetcher fetches URL inputs. It is safe for concurrent use.
type Fetcher struct {
	cfg      Config
	client   *http.Client
	dialer   *net.Dialer
	resolver Resolver
	log      zerolog.Logger
}

// New builds a Fetcher. Call CloseIdleConnections when done with it.
func New(cfg Config) *Fetcher {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = DefaultMaxRedirects
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	f := &Fetcher{cfg: cfg, resolver: cfg.Resolver, log: cfg.Logger}
	if f.resolver == nil {
		f.resolver = net.DefaultResolver
	}
	f.dialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, ControlContext: f.control}
	tr := &http.Transport{
		// No proxy from the environment: the guard must judge the address
		// the request really goes to, not a proxy's.
		Proxy:               nil,
		DialContext:         f.dialContext,
		TLSClientConfig:     cfg.TLSConfig,
		TLSHandshakeTimeout: 15 * time.Second,
		MaxIdleConns:        16,
		IdleConnTimeout:     30 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	f.client = &http.Client{Transport: tr, CheckRedirect: f.checkRedirect}
	return f
}

// CloseIdleConnections closes kept-alive connections.
func (f *Fetcher) CloseIdleConnections() { f.client.CloseIdleConnections() }

// TooLargeError is an input over the size limit. Size is -1 when the
// source did not announce it and the limit was hit while reading.
type TooLargeError struct {
	URL         string
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	if e.Size >= 0 {
		return fmt.Sprintf("%s is %d bytes, over the %d-byte limit for URL inputs", e.URL, e.Size, e.Limit)
	}
	return fmt.Sprintf("%s is over the %d-byte limit for URL inputs", e.URL, e.Limit)
}

// StatusError is a non-2xx HTTP reply.
type StatusError struct {
	URL    string
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("fetch %s: the server answered %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// TimeoutError is a fetch that ran past Config.Timeout.
type TimeoutError struct {
	URL   string
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("fetch %s: no complete answer within %s: check the URL, or host the file closer to the worker", e.URL, e.After)
}

func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// ErrScheme is a URL whose scheme this package does not fetch.
var ErrScheme = errors.New("unsupported URL scheme")

// Redact drops what may carry a secret (user info, query, fragment) from a
// URL, for messages and logs: signed URLs keep their signature in the query.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	return u.String()
}

// Open starts fetching raw and returns its body, which yields at most
// MaxBytes and fails (rather than truncating) when the source has more.
// The caller must Close it; the deadline covers reading it too.
func (f *Fetcher) Open(ctx context.Context, raw string) (io.ReadCloser, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url.Parse's error quotes the input, which may hold a token.
		return nil, errors.New("a URL input is not a valid URL: use https://host/path or gs://bucket/object")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !f.cfg.AllowHTTP {
			return nil, fmt.Errorf("fetch %s: plain http:// is refused: use https:// (an operator can allow http)", Redact(raw))
		}
	case "gs":
		return f.openGCS(ctx, strings.TrimSpace(raw))
	default:
		return nil, fmt.Errorf("fetch %s: %w %q: use https:// or gs://", Redact(raw), ErrScheme, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("URL input %q has no host", Redact(raw))
	}
	if err := f.checkHost(u.Hostname()); err != nil {
		return nil, err
	}
	red := Redact(u.String())
	tctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	req, err := http.NewRequestWithContext(tctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fetch %s: %w", red, err)
	}
	req.Header.Set("User-Agent", f.cfg.UserAgent)
	resp, err := f.client.Do(req)
	if err != nil {
		cancel()
		return nil, f.wrapErr(ctx, tctx, red, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body.Close()
		cancel()
		return nil, &StatusError{URL: red, Status: resp.StatusCode}
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		resp.Body.Close()
		cancel()
		return nil, &TooLargeError{URL: red, Size: resp.ContentLength, Limit: f.cfg.MaxBytes}
	}
	return &body{r: resp.Body, close: resp.Body.Close, cancel: cancel, parent: ctx, ctx: tctx, f: f, url: red}, nil
}

// wrapErr turns a transport error into one that names the input without
// its secrets (url.Error would quote the whole URL) and says what happened.
func (f *Fetcher) wrapErr(parent, tctx context.Context, red string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var re *RefusedError
	if errors.As(err, &re) {
		return fmt.Errorf("fetch %s: %w", red, re)
	}
	if parent.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return &TimeoutError{URL: red, After: f.cfg.Timeout}
	}
	return fmt.Errorf("fetch %s: %w", red, err)
}

// body enforces the size limit and the deadline while the caller reads.
type body struct {
	r           io.Reader
	close       func() error
	cancel      context.CancelFunc
	parent, ctx context.Context
	f           *Fetcher
	url         string
	n           int64
}

func (b *body) Read(p []byte) (int, error) {
	limit := b.f.cfg.MaxBytes
	if b.n >= limit {
		// At the limit: one more byte means the source is too large.
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			return 0, &TooLargeError{URL: b.url, Size: -1, Limit: limit}
		}
		return 0, b.wrap(err)
	}
	if rest := limit - b.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, b.wrap(err)
}

func (b *body) wrap(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return b.f.wrapErr(b.parent, b.ctx, b.url, err)
}

func (b *body) Close() error {
	err := b.close()
	b.cancel()
	return err
}

func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	red := Redact(req.URL.String())
	if f.cfg.MaxRedirects < 0 || len(via) > f.cfg.MaxRedirects {
		return fmt.Errorf("stopped after %d redirects at %s", len(via)-1, red)
	}
	switch req.URL.Scheme {
	case "https":
	case "http":
		if !f.cfg.AllowHTTP {
			return fmt.Errorf("redirected to plain http:// (%s), which is refused", red)
		}
	default:
		return fmt.Errorf("redirected to %s: %w", red, ErrScheme)
	}
	// Addresses are checked when the redirect's connection is dialled.
	return f.checkHost(req.URL.Hostname())
}

// Get fetches raw into memory (a workflow), within MaxBytes.
func (f *Fetcher) Get(ctx context.Context, raw string) ([]byte, error) {
	rc, err := f.Open(ctx, raw)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Download fetches raw into the file dst, which appears only once complete.
func (f *Fetcher) Download(ctx context.Context, raw, dst string) (int64, error) {
	start := time.Now()
	rc, err := f.Open(ctx, raw)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var n int64
	err = fsutil.WriteAtomic(dst, 0o644, func(w io.Writer) error {
		var cerr error
		n, cerr = io.Copy(w, rc)
		return cerr
	})
	if err != nil {
		return 0, err
	}
	f.log.Debug().Str("url", Redact(raw)).Int64("bytes", n).Int64("took_ms", time.Since(start).Milliseconds()).Msg("fetched URL input")
	return n, nil
}
