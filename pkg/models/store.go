package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/rs/zerolog"
	"google.golang.org/api/option"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// Config configures a Store. Only Root is required.
type Config struct {
	// Root is the cache root (COMFY_CACHE_ROOT); the store lives in
	// Root/models.
	Root string

	// HFToken is sent as a Bearer token to hf:// downloads and to https
	// URLs on huggingface.co / hf.co; CivitaiToken to civitai:// and
	// civitai.com. Neither is sent to any other host, redirects included.
	HFToken      string
	CivitaiToken string
	// Endpoints, for tests and mirrors. Defaults: https://huggingface.co and
	// https://civitai.com.
	HFEndpoint      string
	CivitaiEndpoint string

	// HTTPClient is the base client; only its Transport and Jar are used
	// (CheckRedirect is replaced, Timeout dropped in favour of
	// IdleTimeout). Nil: a transport without compression (which would
	// break Range) and proxy settings from the environment.
	HTTPClient *http.Client
	// GCSClient reads gs:// sources. Nil: one is made on the first gs://
	// fetch with GCSOptions (application default credentials).
	GCSClient  *storage.Client
	GCSOptions []option.ClientOption

	// LocalBase is the directory relative local sources are resolved
	// against (the spec's directory); "" means the working directory.
	LocalBase string
	// Offline forbids network access: a model must already be in the store
	// (or be a local file).
	Offline bool

	// MaxAttempts bounds consecutive attempts on one source that make no
	// progress (default 5). An attempt that received bytes resets the count:
	// a flaky link on a 20 GB file must not exhaust it.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the exponential backoff between
	// attempts (defaults 1s and 30s).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// IdleTimeout aborts an attempt that receives nothing for this long
	// (default 60s). There is no total timeout: big files take long.
	IdleTimeout time.Duration
	// BufferedWrites writes downloads through the page cache even on a
	// local disk, where direct I/O is used by default.
	BufferedWrites bool
	// Locks make processes on one host download a model once (an
	// optimisation: across hosts the store needs none). Its Poll is how
	// often a waiter retries (default 200ms).
	Locks cache.Locks
	// Lease times the private partial downloads; zero fields take
	// cache.DefaultLease.
	Lease cache.Lease
	// ProgressInterval is the minimum time between progress events of one
	// download (default 250ms).
	ProgressInterval time.Duration

	Logger    zerolog.Logger // zero value: no logs
	Progress  progress.Func  // may be nil
	UserAgent string
}

// Request asks for one model.
type Request struct {
	// Item names the model in progress events, logs and errors (the
	// target path); defaults to the source's file name.
	Item   string
	Source string
	// Alternatives are further sources of the same file, tried in order
	// after Source fails.
	Alternatives []string
	// SHA256 ("sha256:<hex>" or bare hex) and Size are optional; when set,
	// the download must match them.
	SHA256 string
	Size   int64
}

// Blob is a model file in the store.
type Blob struct {
	Path   string // <root>/models/sha256/<hex>
	SHA256 string // lowercase hex
	Size   int64
	// Source is the redacted canonical source it came from ("" for a hit by
	// digest, which does not know).
	Source string
	// Downloaded is false for a cache hit.
	Downloaded bool
}

// Store is the content-addressed model store. It is safe for concurrent
// use, also by several processes sharing Root.
type Store struct {
	cfg    Config
	dir    string
	log    zerolog.Logger
	red    redactor
	client *http.Client

	dirsOnce sync.Once
	dirsErr  error
	gcsOnce  sync.Once
	gcs      *storage.Client
	gcsErr   error
	ownGCS   bool
}

// New makes a Store; its directories are made on the first Fetch, so that a
// store used only for Lookup (a dry run) writes nothing.
func New(cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("models: Config.Root is required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("models: cache root: %w", err)
	}
	setDefaults(&cfg)
	st := &Store{cfg: cfg, dir: filepath.Join(root, "models"), log: cfg.Logger,
		red: newRedactor(cfg.HFToken, cfg.CivitaiToken)}
	st.client = st.newHTTPClient()
	if cfg.GCSClient != nil {
		st.gcs = cfg.GCSClient
		st.gcsOnce.Do(func() {})
	}
	return st, nil
}

// ensureDirs makes the store's directories, once.
func (st *Store) ensureDirs() error {
	st.dirsOnce.Do(func() {
		for _, d := range []string{"sha256", "index", "partial", "locks", "used"} {
			if err := os.MkdirAll(filepath.Join(st.dir, d), 0o755); err != nil {
				st.dirsErr = fmt.Errorf("models: create store: %w", err)
				return
			}
		}
	})
	return st.dirsErr
}

func setDefaults(c *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	def(&c.BackoffBase, time.Second)
	def(&c.BackoffMax, 30*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.Locks.Poll, 200*time.Millisecond)
	def(&c.ProgressInterval, 250*time.Millisecond)
	c.Lease = c.Lease.OrDefault()
	if c.HFEndpoint == "" {
		c.HFEndpoint = "https://huggingface.co"
	}
	if c.CivitaiEndpoint == "" {
		c.CivitaiEndpoint = "https://civitai.com"
	}
	c.HFEndpoint = strings.TrimRight(c.HFEndpoint, "/")
	c.CivitaiEndpoint = strings.TrimRight(c.CivitaiEndpoint, "/")
	if c.UserAgent == "" {
		c.UserAgent = "runpod-comfy-worker"
	}
}

// Close releases the GCS client the store made itself.
func (st *Store) Close() error {
	if st.ownGCS && st.gcs != nil {
		return st.gcs.Close()
	}
	return nil
}

// Dir is the store's directory, Root/models.
func (st *Store) Dir() string { return st.dir }

// BlobPath is where the store keeps the blob of a sha256 (lowercase hex),
// whether or not it is there.
func (st *Store) BlobPath(hexDigest string) string { return st.blobPath(hexDigest) }

func (st *Store) blobPath(hexDigest string) string {
	return filepath.Join(st.dir, "sha256", hexDigest)
}

// normalizeDigest accepts "sha256:<hex>" or bare hex and returns lowercase
// hex, or "" for an empty input.
func normalizeDigest(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	h := strings.ToLower(strings.TrimSpace(s))
	if algo, rest, ok := strings.Cut(h, ":"); ok {
		if algo != "sha256" {
			return "", fmt.Errorf("checksum %q: only sha256 is supported", s)
		}
		h = rest
	}
	if len(h) != 64 {
		return "", fmt.Errorf("checksum %q: want 64 hex digits of sha256", s)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("checksum %q: not hex", s)
	}
	return h, nil
}

func hashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// resolveLocal makes a relative file source absolute, so that the same
// relative path in two specs is not one cache key.
func (st *Store) resolveLocal(src Source) (Source, error) {
	if src.Kind != KindFile || filepath.IsAbs(src.Path) {
		return src, nil
	}
	base := st.cfg.LocalBase
	if base == "" {
		wd, err := os.Getwd()
		if err != nil {
			return src, err
		}
		base = wd
	}
	abs, err := filepath.Abs(filepath.Join(base, src.Path))
	if err != nil {
		return src, err
	}
	src.Path = abs
	return src, nil
}

// gcsClient returns the configured client or makes one on first use.
func (st *Store) gcsClient(ctx context.Context) (*storage.Client, error) {
	st.gcsOnce.Do(func() {
		// The client outlives this call's context; a cancelled ctx must
		// not poison the client for later fetches.
		c, err := storage.NewClient(context.WithoutCancel(ctx), st.cfg.GCSOptions...)
		if err != nil {
			st.gcsErr = fmt.Errorf("create GCS client (check GOOGLE_APPLICATION_CREDENTIALS): %w", err)
			return
		}
		st.gcs, st.ownGCS = c, true
	})
	return st.gcs, st.gcsErr
}
