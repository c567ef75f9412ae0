package endpoint

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/runpod/go-sdk/pkg/sdk/config"
	sdkendpoint "github.com/runpod/go-sdk/pkg/sdk/endpoint"
)

// DefaultBaseURL is RunPod's serverless API.
const DefaultBaseURL = "https://api.runpod.ai/v2"

// Defaults for the zero values of Config.
const (
	DefaultPollInterval    = time.Second
	DefaultRequestTimeout  = 30 * time.Second
	DefaultDownloadTimeout = 10 * time.Minute
	DefaultMaxDownload     = 4 << 30
)

// Job states as the endpoint API reports them.
const (
	StatusInQueue    = "IN_QUEUE"
	StatusInProgress = "IN_PROGRESS"
	StatusCompleted  = "COMPLETED"
	StatusFailed     = "FAILED"
	StatusCancelled  = "CANCELLED"
	StatusTimedOut   = "TIMED_OUT"
)

// Terminal reports whether a job in status s will not change any more.
func Terminal(s string) bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusTimedOut:
		return true
	}
	return false
}

// Config configures a Client. Zero values get the defaults above.
type Config struct {
	// APIKey is sent as "Authorization: Bearer <key>". Never logged.
	APIKey string `json:"-"`
	// EndpointID is the deployed endpoint's id.
	EndpointID string
	// BaseURL is the API root without the endpoint id; default
	// DefaultBaseURL.
	BaseURL string
	// HTTPClient serves /runsync, /stream and output downloads; default a
	// client without an overall timeout (contexts bound every call). The
	// SDK calls (/run, /status, /cancel, /health) cannot use it.
	HTTPClient *http.Client
	// Logger is for debug and warning lines; the zero value logs nothing.
	Logger zerolog.Logger
	// PollInterval is the pause between /status polls.
	PollInterval time.Duration
	// RequestTimeout bounds one API request (not the wait of /runsync,
	// which is added to it).
	RequestTimeout time.Duration
	// MaxPollFailures is how many polls in a row may fail transiently
	// (network, 429, 5xx) before Call gives up; default 5.
	MaxPollFailures int
	// DownloadTimeout bounds the download of one output URL.
	DownloadTimeout time.Duration
	// MaxDownloadBytes bounds one downloaded output.
	MaxDownloadBytes int64
}

// Client calls one endpoint. It is safe for concurrent use. Close it to
// wait for SDK calls abandoned by cancelled contexts.
type Client struct {
	cfg  Config
	log  zerolog.Logger
	base string // BaseURL + "/" + EndpointID
	sdk  *sdkendpoint.Endpoint
	// sdkSeconds is RequestTimeout for the SDK, which counts whole seconds.
	sdkSeconds int
	inflight   sync.WaitGroup
}

var endpointIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("no RunPod API key: set RUNPOD_API_KEY to a key from the RunPod console (Settings > API Keys)")
	}
	if !endpointIDRE.MatchString(cfg.EndpointID) {
		return nil, fmt.Errorf("endpoint id %q is not valid: use the id shown on the endpoint's page in the RunPod console", cfg.EndpointID)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxPollFailures <= 0 {
		cfg.MaxPollFailures = 5
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = DefaultDownloadTimeout
	}
	if cfg.MaxDownloadBytes <= 0 {
		cfg.MaxDownloadBytes = DefaultMaxDownload
	}
	key, id, base := cfg.APIKey, cfg.EndpointID, cfg.BaseURL
	ep, err := sdkendpoint.New(&config.Config{ApiKey: &key}, &sdkendpoint.Option{EndpointId: &id, EndpointUrl: &base})
	if err != nil {
		return nil, fmt.Errorf("runpod sdk: %w", err)
	}
	return &Client{
		cfg: cfg, log: cfg.Logger.With().Str("endpoint", cfg.EndpointID).Logger(),
		base: cfg.BaseURL + "/" + cfg.EndpointID, sdk: ep,
		sdkSeconds: int((cfg.RequestTimeout + time.Second - 1) / time.Second),
	}, nil
}

// Close waits for SDK requests that cancelled calls stopped waiting for;
// each ends within RequestTimeout.
func (c *Client) Close() error {
	c.inflight.Wait()
	return nil
}

// Writer returns the OutputWriter configured from c's settings.
func (c *Client) Writer() *OutputWriter {
	return &OutputWriter{HTTPClient: c.cfg.HTTPClient, Timeout: c.cfg.DownloadTimeout, MaxBytes: c.cfg.MaxDownloadBytes, Logger: c.log}
}

// jobIDRE bounds what a server-issued job id may contain before it is put
// into a URL path ("<uuid>-u1", "sync-<uuid>-e1").
var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$`)

func checkJobID(id string) error {
	if !jobIDRE.MatchString(id) {
		return fmt.Errorf("the endpoint API returned an unusable job id %q", id)
	}
	return nil
}
