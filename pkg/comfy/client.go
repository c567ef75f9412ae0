package comfy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// Process is what the client needs to know about the ComfyUI behind its
// URL: when it dies and why. *Supervisor implements it.
type Process interface {
	// Done is closed when the process exits.
	Done() <-chan struct{}
	// Err explains the exit (a *CrashError carries the log tail).
	Err() error
}

// ClientConfig configures a Client. Only BaseURL is required.
type ClientConfig struct {
	// BaseURL is ComfyUI's address, e.g. http://127.0.0.1:8188.
	BaseURL string
	// HTTPClient is used for every HTTP call; default: a keep-alive client
	// without proxy (ComfyUI is local).
	HTTPClient *http.Client
	// Process, when set, makes a running job fail at once with its crash
	// error (and log tail) when ComfyUI dies.
	Process Process
	Logger  zerolog.Logger
	// PollInterval is the history polling period once the socket has
	// dropped or gone silent; default 500 ms.
	PollInterval time.Duration
	// SilenceTimeout is how long the socket may say nothing before history
	// is polled alongside it; default 30 s. (Long nodes without progress
	// are silent; the socket is kept.)
	SilenceTimeout time.Duration
	// HistoryWait bounds the wait for the history entry after the socket
	// reported completion; default 10 s.
	HistoryWait time.Duration
	// InterruptGrace bounds the wait for an interrupted prompt to leave
	// ComfyUI's queue; default 10 s.
	InterruptGrace time.Duration
	// ReadLimit is the largest WebSocket message accepted; default 256 MiB.
	ReadLimit int64
	// DownloadConcurrency is how many outputs are fetched at once; default 4.
	DownloadConcurrency int
}

// Client drives prompts on one ComfyUI over HTTP and WebSocket. It knows
// nothing about processes beyond the optional Process death signal. Safe for
// concurrent use, though ComfyUI runs one prompt at a time.
type Client struct {
	cfg    ClientConfig
	base   *url.URL
	wsURL  string
	http   *http.Client
	dialer *websocket.Dialer
	log    zerolog.Logger

	// clientID names the socket; ComfyUI sends a prompt's messages only to
	// the socket of the client_id it was posted with.
	clientID string
	sockMu   sync.Mutex
	sock     *socket
}

// NewClient checks cfg and fills in defaults.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("comfy: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.SilenceTimeout <= 0 {
		cfg.SilenceTimeout = 30 * time.Second
	}
	if cfg.HistoryWait <= 0 {
		cfg.HistoryWait = 10 * time.Second
	}
	if cfg.InterruptGrace <= 0 {
		cfg.InterruptGrace = 10 * time.Second
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = 256 << 20
	}
	if cfg.DownloadConcurrency <= 0 {
		cfg.DownloadConcurrency = 4
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	ws := *u
	ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	ws.Path += "/ws"
	return &Client{
		cfg:   cfg,
		base:  u,
		wsURL: ws.String(),
		http:  hc,
		dialer: &websocket.Dialer{
			Proxy:            nil,
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   64 << 10,
		},
		log:      cfg.Logger.With().Str("component", "comfy-client").Logger(),
		clientID: uuid.NewString(),
	}, nil
}

// Close closes the WebSocket (stopping its reader goroutine) and idle HTTP
// connections. Runs still in progress fall back to polling.
func (c *Client) Close() {
	c.sockMu.Lock()
	if c.sock != nil {
		c.sock.close()
		c.sock = nil
	}
	c.sockMu.Unlock()
	c.http.CloseIdleConnections()
}

// subscribe returns a subscription to the client's socket, connecting it
// first if it is not connected (or has dropped since the last run).
func (c *Client) subscribe(ctx context.Context) (*subscription, error) {
	c.sockMu.Lock()
	defer c.sockMu.Unlock()
	if c.sock != nil && c.sock.ended() {
		c.sock = nil
	}
	if c.sock == nil {
		s, err := dialSocket(ctx, c.dialer, c.wsURL, c.clientID, c.cfg.ReadLimit)
		if err != nil {
			return nil, err
		}
		c.sock = s
	}
	return c.sock.subscribe(), nil
}

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// maxErrorBody bounds how much of an unexpected body goes into an error.
const maxErrorBody = 2 << 10

// do sends a request; JSON body when in != nil. It returns the response
// body for status 200, or an *HTTPError.
func (c *Client) do(ctx context.Context, method, path string, in any, want ...int) ([]byte, int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, nil), body)
	if err != nil {
		return nil, 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("ComfyUI %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("ComfyUI %s %s: read body: %w", method, path, err)
	}
	ok := resp.StatusCode == http.StatusOK
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		return data, resp.StatusCode, &HTTPError{Op: method + " " + path, Status: resp.StatusCode, Body: truncate(strings.TrimSpace(string(data)), maxErrorBody)}
	}
	return data, resp.StatusCode, nil
}

// procDone is the death signal of the process, or nil (never ready).
func (c *Client) procDone() <-chan struct{} {
	if c.cfg.Process == nil {
		return nil
	}
	return c.cfg.Process.Done()
}

// crashWait is how long a failed request waits for the process to be
// reported dead before the failure is taken at face value.
const crashWait = 3 * time.Second

// explain turns a transport failure into the crash error when the failure
// was ComfyUI dying.
func (c *Client) explain(ctx context.Context, promptID string, err error) error {
	if err == nil || c.cfg.Process == nil || ctx.Err() != nil || !isConnError(err) {
		return err
	}
	t := time.NewTimer(crashWait)
	defer t.Stop()
	select {
	case <-c.cfg.Process.Done():
		return c.crashed(promptID)
	case <-t.C:
		return err
	case <-ctx.Done():
		return err
	}
}

func (c *Client) crashed(promptID string) error {
	err := c.cfg.Process.Err()
	if err == nil {
		err = errors.New("ComfyUI exited")
	}
	if promptID == "" {
		return err
	}
	return fmt.Errorf("prompt %s: %w", promptID, err)
}

// isConnError reports a failure of the connection itself (refused, reset,
// cut short): what a dying ComfyUI looks like from outside.
func isConnError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
