// Package comfytest is a fake ComfyUI server for tests: the HTTP routes and
// WebSocket messages a worker uses, reproducing the sequences recorded on real
// ComfyUI v0.3.64 and v0.3.12 (fresh run, cached re-run, execution error,
// interrupt, 400 bodies of both versions), plus misbehaviour on demand: a
// dropped or silent socket mid-run and a history entry that appears late.
//
// It executes a small set of fake node classes (see nodes.go) one prompt at a
// time, writes real files (PNG, GIF, ...) to its output and temp directories
// and serves them with /view. Start runs it on 127.0.0.1 for a test; New gives
// the bare handler, which the fake ComfyUI process (fakecomfy) serves.
package comfytest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Versions the fake can imitate.
const (
	// Version064 is ComfyUI v0.3.64: progress_state messages, client-chosen
	// prompt_id echoed, targeted /interrupt, /features.
	Version064 = "0.3.64"
	// Version012 is ComfyUI v0.3.12: no progress_state, client prompt_id
	// ignored, node_errors as [] in error bodies, global /interrupt only.
	Version012 = "0.3.12"
)

// Options configures a fake server.
type Options struct {
	// Version is Version064 (default) or Version012.
	Version string
	// InputDir, OutputDir and TempDir are where uploads, saved outputs and
	// previews live. TempDir is the effective temp dir (ComfyUI's
	// --temp-directory X means X/temp; the process fake handles that).
	InputDir, OutputDir, TempDir string
	// Models are the values CheckpointLoaderSimple accepts.
	Models []string
	// Argv is reported by /system_stats.
	Argv []string
	// Behavior is the initial misbehaviour; see SetBehavior.
	Behavior Behavior
	// OnExecute, when set, is called as a prompt starts executing. The
	// process fake crashes from here.
	OnExecute func(promptID string)
	// Logf receives the log lines ComfyUI would print.
	Logf func(format string, args ...any)
}

// Behavior selects misbehaviour. It can be changed between prompts.
type Behavior struct {
	// DropSocketAfter closes the submitting client's socket abruptly right
	// after the first message of this type for a prompt ("execution_start",
	// "executing", "progress", "execution_success", ...). Execution goes on.
	DropSocketAfter string
	// SilentSocket sends no messages at all after the first status.
	SilentSocket bool
	// HistoryDelay stores the history entry this long after the socket has
	// reported completion (execution_success and executing null).
	HistoryDelay time.Duration
}

// Timing is when the fake handled a prompt: Received (POST /prompt),
// Started (taken from the queue) and Finished (just before it sends
// executing {node: null}). Finished-Started is the fake's execution time,
// which benchmarks subtract from the client's total.
type Timing struct {
	Received, Started, Finished time.Time
}

// InterruptCall records one POST /interrupt.
type InterruptCall struct {
	PromptID string // "" for a global interrupt
	// Hit is whether a running prompt was interrupted.
	Hit bool
}

// Server is the fake. It is safe for concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux

	// order makes "queued" visible (status sent) before "taken".
	order sync.Mutex

	mu           sync.Mutex
	behavior     Behavior
	clients      map[string]*wsClient
	queue        []*item
	running      *item
	history      map[string]map[string]any
	historyOrder []string
	timings      map[string]*Timing
	cache        map[string]*cacheEntry
	number       int
	freeMemory   bool
	lastNode     string
	prompts      []json.RawMessage
	interrupts   []InterruptCall
	uploads      []string

	interrupt atomic.Bool
	wake      chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	// URL is the base URL when started with Start.
	URL  string
	http *httptest.Server
}

// New returns a fake server handler with its execution worker running. Close
// stops it. Directories must exist.
func New(opts Options) (*Server, error) {
	if opts.Version == "" {
		opts.Version = Version064
	}
	if opts.Version != Version064 && opts.Version != Version012 {
		return nil, fmt.Errorf("comfytest: unknown version %q", opts.Version)
	}
	if len(opts.Models) == 0 {
		opts.Models = []string{"v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"}
	}
	for _, d := range []string{opts.InputDir, opts.OutputDir, opts.TempDir} {
		if d == "" {
			return nil, fmt.Errorf("comfytest: InputDir, OutputDir and TempDir are required")
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	s := &Server{
		opts:     opts,
		behavior: opts.Behavior,
		clients:  map[string]*wsClient{},
		history:  map[string]map[string]any{},
		timings:  map[string]*Timing{},
		cache:    map[string]*cacheEntry{},
		wake:     make(chan struct{}, 1),
		closing:  make(chan struct{}),
	}
	s.routes()
	s.wg.Add(1)
	go s.worker()
	return s, nil
}

// Start runs a fake on 127.0.0.1 with fresh directories under t.TempDir()
// (unless opts names them) and closes it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := t.TempDir()
	if opts.InputDir == "" {
		opts.InputDir = filepath.Join(dir, "input")
	}
	if opts.OutputDir == "" {
		opts.OutputDir = filepath.Join(dir, "output")
	}
	if opts.TempDir == "" {
		opts.TempDir = filepath.Join(dir, "temp")
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.http = httptest.NewServer(s)
	s.URL = s.http.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the worker, drops every socket and, if Start made one, the
// HTTP server.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		for _, c := range s.clients {
			c.conn.Close()
		}
		s.mu.Unlock()
		if s.http != nil {
			s.http.CloseClientConnections()
			s.http.Close()
		}
		s.wg.Wait()
	})
}

// SetBehavior changes the misbehaviour for prompts that start from now on.
func (s *Server) SetBehavior(b Behavior) {
	s.mu.Lock()
	s.behavior = b
	s.mu.Unlock()
}

// Options returns the options the server runs with (defaults filled in).
func (s *Server) Options() Options { return s.opts }

// Timing returns when the fake received, started and finished a prompt.
func (s *Server) Timing(promptID string) (Timing, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.timings[promptID]
	if !ok {
		return Timing{}, false
	}
	return *t, true
}

// Prompts returns the raw bodies of every POST /prompt, oldest first.
func (s *Server) Prompts() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]json.RawMessage(nil), s.prompts...)
}

// Interrupts returns every POST /interrupt, oldest first.
func (s *Server) Interrupts() []InterruptCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]InterruptCall(nil), s.interrupts...)
}

// Uploads returns the stored names of every upload, oldest first.
func (s *Server) Uploads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.uploads...)
}

// ConnectedClients returns the ids of the sockets currently connected.
func (s *Server) ConnectedClients() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.clients)
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	// Every route is also served under /api/ (ComfyUI since 2024-06).
	for _, p := range []string{"", "/api"} {
		s.mux.HandleFunc("GET "+p+"/ws", s.handleWS)
		s.mux.HandleFunc("POST "+p+"/prompt", s.handlePostPrompt)
		s.mux.HandleFunc("GET "+p+"/prompt", s.handleGetPrompt)
		s.mux.HandleFunc("GET "+p+"/history", s.handleHistoryList)
		s.mux.HandleFunc("GET "+p+"/history/{id}", s.handleHistory)
		s.mux.HandleFunc("POST "+p+"/history", s.handlePostHistory)
		s.mux.HandleFunc("GET "+p+"/queue", s.handleGetQueue)
		s.mux.HandleFunc("POST "+p+"/queue", s.handlePostQueue)
		s.mux.HandleFunc("POST "+p+"/interrupt", s.handleInterrupt)
		s.mux.HandleFunc("POST "+p+"/free", s.handleFree)
		s.mux.HandleFunc("GET "+p+"/system_stats", s.handleSystemStats)
		s.mux.HandleFunc("GET "+p+"/view", s.handleView)
		s.mux.HandleFunc("POST "+p+"/upload/image", s.handleUpload)
		if s.opts.Version == Version064 {
			s.mux.HandleFunc("GET "+p+"/features", s.handleFeatures)
		}
	}
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>fake ComfyUI</body></html>")
	})
}

// ServeHTTP applies ComfyUI's origin check, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if originMismatch(r) {
		s.logf("WARNING: request with non matching host and origin %s != %s, returning 403", r.Host, r.Header.Get("Origin"))
		http.Error(w, "", http.StatusForbidden)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// originMismatch is ComfyUI's create_origin_only_middleware: for a loopback
// Host, an Origin naming another host:port is refused.
func originMismatch(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || r.Host == "" {
		return false
	}
	o, err := url.Parse(origin)
	if err != nil {
		return false
	}
	hostName, hostPort, err := net.SplitHostPort(r.Host)
	if err != nil {
		hostName, hostPort = r.Host, ""
	}
	ip := net.ParseIP(strings.Trim(hostName, "[]"))
	loopback := hostName == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback {
		return false
	}
	host, orig := strings.ToLower(r.Host), strings.ToLower(o.Host)
	if o.Port() == "" {
		host = strings.ToLower(hostName)
	}
	if hostPort == "" {
		orig = strings.ToLower(o.Hostname())
	}
	return host != "" && orig != "" && host != orig
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) handleSystemStats(w http.ResponseWriter, r *http.Request) {
	argv := s.opts.Argv
	if argv == nil {
		argv = []string{"main.py"}
	}
	writeJSON(w, 200, map[string]any{
		"system": map[string]any{
			"os": "posix", "ram_total": 8 << 30, "ram_free": 6 << 30,
			"comfyui_version": s.opts.Version, "required_frontend_version": "1.27.10",
			"python_version": "3.12.3 (main) [GCC 13.2.0]", "pytorch_version": "2.8.0+cpu",
			"embedded_python": false, "argv": argv,
		},
		"devices": []any{map[string]any{"name": "cpu", "type": "cpu", "index": nil,
			"vram_total": 8 << 30, "vram_free": 6 << 30, "torch_vram_total": 8 << 30, "torch_vram_free": 6 << 30}},
	})
}

func (s *Server) handleFeatures(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"supports_preview_metadata": true, "max_upload_size": 104857600})
}
