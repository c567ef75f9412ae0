package comfy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Config describes how to run one ComfyUI build.
type Config struct {
	// Python is the build's interpreter (its venv python).
	Python string
	// Dir is the ComfyUI checkout: the working directory, holding main.py.
	Dir string
	// Listen is the address to bind; default 127.0.0.1 (worker mode).
	Listen string
	// Port to bind; 0 picks a free one.
	Port int
	// ScratchDir is local scratch space for this worker. The input, output,
	// temp and user directories default to folders inside it, so the shared
	// (read-only) build is never written to.
	ScratchDir string
	// InputDir, OutputDir, TempDir and UserDir override ScratchDir's
	// folders. ComfyUI keeps temp files in TempDir/temp.
	InputDir, OutputDir, TempDir, UserDir string
	// DatabaseURL is passed as --database-url where the ComfyUI version
	// supports it (see SupportsDatabaseURL). Empty means a per-worker SQLite
	// file in UserDir, so workers sharing a build never share a database.
	DatabaseURL string
	// Env is the version spec's env, applied over Environ.
	Env map[string]string
	// Environ is the base environment; nil inherits this process's.
	Environ []string
	// ExtraArgs are passed through to ComfyUI after the supervisor's own.
	// A --port or --listen among them replaces Port or Listen.
	ExtraArgs []string
	// GPU reports whether a GPU is visible; nil uses DetectGPU. Without a
	// GPU (or with CUDA_VISIBLE_DEVICES hiding all) --cpu is added unless
	// ExtraArgs already choose a device mode.
	GPU func() bool
	// StartTimeout bounds the wait for /system_stats; default 10 minutes
	// (custom nodes can take long to import on a cold volume).
	StartTimeout time.Duration
	// StopGrace is how long SIGTERM is given before SIGKILL; default 10 s.
	StopGrace time.Duration
	// LogLines is how many output lines are kept for errors; default 500.
	LogLines int
	// Logger receives ComfyUI's output, tagged component=comfyui. The zero
	// value discards everything.
	Logger zerolog.Logger
}

// Defaults for Config.
const (
	DefaultStartTimeout = 10 * time.Minute
	DefaultStopGrace    = 10 * time.Second
	defaultLogLines     = 500
	// readyPoll is the /system_stats polling period; with the log-line
	// trigger it keeps readiness detection well under 50 ms.
	readyPoll    = 10 * time.Millisecond
	probeTimeout = time.Second
	portAttempts = 3
)

// Supervisor runs one ComfyUI process at a time for one build: start and
// wait until ready, notice a crash at once, stop without orphans. It knows
// nothing about prompts. Its methods are safe for concurrent use.
type Supervisor struct {
	cfg   Config
	log   zerolog.Logger
	probe *http.Client

	mu  sync.Mutex
	cur *process
	// stops counts Stop calls, so a Stop that lands while Start has not
	// spawned the process yet still wins.
	stops int
}

// ErrNotStarted is Err's answer before the first Start.
var ErrNotStarted = errors.New("ComfyUI has not been started")

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// NewSupervisor checks cfg and fills in its defaults.
func NewSupervisor(cfg Config) (*Supervisor, error) {
	if cfg.Python == "" {
		return nil, errors.New("comfy: Config.Python is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("comfy: Config.Dir is required")
	}
	if cfg.ScratchDir == "" && (cfg.InputDir == "" || cfg.OutputDir == "" || cfg.TempDir == "" || cfg.UserDir == "") {
		return nil, errors.New("comfy: Config.ScratchDir is required unless all four directories are given")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	if cfg.LogLines <= 0 {
		cfg.LogLines = defaultLogLines
	}
	if cfg.GPU == nil {
		cfg.GPU = DetectGPU
	}
	dirs := []*string{&cfg.InputDir, &cfg.OutputDir, &cfg.TempDir, &cfg.UserDir}
	for i, name := range []string{"input", "output", "temp", "user"} {
		if *dirs[i] == "" {
			*dirs[i] = filepath.Join(cfg.ScratchDir, name)
		}
		// ComfyUI runs in Dir: a relative path would resolve there.
		abs, err := filepath.Abs(*dirs[i])
		if err != nil {
			return nil, fmt.Errorf("comfy: %s directory: %w", name, err)
		}
		*dirs[i] = abs
	}
	return &Supervisor{
		cfg:   cfg,
		log:   cfg.Logger.With().Str("component", "comfyui").Logger(),
		probe: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}},
	}, nil
}

// Dirs returns the input, output, temp (base, ComfyUI adds /temp) and user
// directories ComfyUI is given.
func (s *Supervisor) Dirs() (input, output, temp, user string) {
	return s.cfg.InputDir, s.cfg.OutputDir, s.cfg.TempDir, s.cfg.UserDir
}

// Start launches ComfyUI and waits until GET /system_stats answers,
// returning its base URL. If ComfyUI is already running it returns the
// current URL. An exit during start-up fails at once with a *StartError
// holding the log tail and any custom node import failures.
func (s *Supervisor) Start(ctx context.Context) (string, error) {
	s.mu.Lock()
	stops := s.stops
	if p := s.cur; p != nil && !p.exited() && p.ready.Load() {
		s.mu.Unlock()
		return p.baseURL, nil
	} else if p != nil && !p.exited() {
		s.mu.Unlock()
		return "", errors.New("ComfyUI is already starting")
	}
	s.mu.Unlock()

	if _, err := os.Stat(filepath.Join(s.cfg.Dir, "main.py")); err != nil {
		return "", fmt.Errorf("no main.py in %s (is the version realized?): %w", s.cfg.Dir, err)
	}
	for _, d := range []string{s.cfg.InputDir, s.cfg.OutputDir, s.cfg.TempDir, s.cfg.UserDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("create ComfyUI scratch directory: %w", err)
		}
	}
	na, err := splitNetArgs(s.cfg.ExtraArgs)
	if err != nil {
		return "", err
	}
	listen, port := s.cfg.Listen, s.cfg.Port
	if na.listen != nil {
		listen = *na.listen
	}
	if na.port != nil {
		port = *na.port
	}
	env := buildEnv(s.cfg.Environ, s.cfg.Env)
	gpu := s.cfg.GPU() && !gpuHidden(env)

	attempts := 1
	if port == 0 {
		attempts = portAttempts
	}
	for attempt := 1; ; attempt++ {
		p := port
		if p == 0 {
			if p, err = freePort(probeHost(listen)); err != nil {
				return "", err
			}
		}
		url, err := s.startOnce(ctx, stops, listen, p, s.args(listen, p, gpu, na.rest), env)
		var se *StartError
		if err != nil && attempt < attempts && errors.As(err, &se) && se.Reason == "exited" && portInUse(se.LogTail) {
			s.log.Warn().Int("port", p).Msg("port was taken before ComfyUI bound it; retrying with another")
			continue
		}
		return url, err
	}
}

func portInUse(tail []string) bool {
	for _, l := range tail {
		l = strings.ToLower(l)
		if strings.Contains(l, "address already in use") || strings.Contains(l, "errno 98") {
			return true
		}
	}
	return false
}

// args is the command line after main.py.
func (s *Supervisor) args(listen string, port int, gpu bool, extra []string) []string {
	c := s.cfg
	args := []string{
		"--listen", listen, "--port", strconv.Itoa(port),
		"--input-directory", c.InputDir, "--output-directory", c.OutputDir,
		"--temp-directory", c.TempDir, "--user-directory", c.UserDir,
	}
	if SupportsDatabaseURL(c.Dir) {
		db := c.DatabaseURL
		if db == "" {
			// sqlite:/// + an absolute path gives the four slashes SQLAlchemy wants.
			db = "sqlite:///" + filepath.ToSlash(filepath.Join(c.UserDir, "comfyui.db"))
		}
		args = append(args, "--database-url", db)
	}
	args = append(args, "--disable-auto-launch")
	if !gpu && !hasAnyFlag(extra, cpuExclusive...) {
		args = append(args, "--cpu")
	}
	return append(args, extra...)
}

func (s *Supervisor) startOnce(ctx context.Context, stops int, listen string, port int, args, env []string) (string, error) {
	book := newLogBook(s.cfg.LogLines)
	p, err := spawn(s.cfg.Python, s.cfg.Dir, args, env, book, s.log)
	if err != nil {
		return "", err
	}
	p.baseURL = "http://" + net.JoinHostPort(probeHost(listen), strconv.Itoa(port))
	s.mu.Lock()
	s.cur = p
	stopped := s.stops != stops
	s.mu.Unlock()
	if stopped {
		p.stop(context.WithoutCancel(ctx), s.cfg.StopGrace, s.log)
		return "", &StartError{Reason: "stopped", ExitCode: p.exitCode, Signal: p.signal, LogTail: p.book.tail(maxTailInError)}
	}
	s.log.Info().Int("pid", p.pgid).Str("python", s.cfg.Python).Strs("args", args).Msg("starting ComfyUI")

	if err := s.waitReady(ctx, p); err != nil {
		return "", err
	}
	p.ready.Store(true)
	ev := s.log.Info().Str("url", p.baseURL).Int64("took_ms", time.Since(p.started).Milliseconds())
	if f := book.importFailures(); len(f) > 0 {
		s.log.Warn().Str("nodes", importNames(f)).Msg("custom nodes failed to import; workflows using them will be rejected")
	}
	ev.Msg("ComfyUI is ready")
	return p.baseURL, nil
}

func (s *Supervisor) waitReady(ctx context.Context, p *process) error {
	deadline := time.NewTimer(s.cfg.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	fail := func(reason string) error {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StopGrace+drainTimeout+5*time.Second)
		defer cancel()
		p.stop(stopCtx, s.cfg.StopGrace, s.log)
		return &StartError{Reason: reason, ExitCode: -1, After: time.Since(p.started),
			LogTail: p.book.tail(maxTailInError), ImportFailures: p.book.importFailures()}
	}
	for {
		if s.probeOnce(ctx, p) {
			return nil
		}
		select {
		case <-p.done:
			if p.stopping.Load() {
				return &StartError{Reason: "stopped", ExitCode: p.exitCode, Signal: p.signal, After: time.Since(p.started),
					LogTail: p.book.tail(maxTailInError), ImportFailures: p.book.importFailures()}
			}
			return &StartError{Reason: "exited", ExitCode: p.exitCode, Signal: p.signal, After: time.Since(p.started),
				LogTail: p.book.tail(maxTailInError), ImportFailures: p.book.importFailures()}
		case <-ctx.Done():
			err := fail("stopped")
			return fmt.Errorf("start ComfyUI: %w (%w)", ctx.Err(), err)
		case <-deadline.C:
			return fail("timeout")
		case <-tick.C:
		case <-p.readyLine:
		}
	}
}

// probeOnce asks /system_stats once; it gives up early if the process dies.
func (s *Supervisor) probeOnce(ctx context.Context, p *process) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.baseURL+"/system_stats", nil)
	if err != nil {
		return false
	}
	resp, err := s.probe.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop ends ComfyUI: SIGTERM to its process group, SIGKILL after StopGrace
// (or when ctx ends). Nothing it started survives. Stopping a process that
// is not running is not an error.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.mu.Lock()
	p := s.cur
	s.stops++
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop(ctx, s.cfg.StopGrace, s.log)
}

// Done is closed when the current ComfyUI process exits (already closed
// when none runs). A client watches it to fail a job at once on a crash.
func (s *Supervisor) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return closedChan
	}
	return s.cur.done
}

// Err is nil while ComfyUI runs; after it exited it is a *CrashError (with
// the log tail) or ErrStopped when Stop ended it.
func (s *Supervisor) Err() error {
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	if p == nil {
		return ErrNotStarted
	}
	select {
	case <-p.done:
		return p.exitErr
	default:
		return nil
	}
}

// BaseURL is the URL of the running ComfyUI, "" when it is not ready.
func (s *Supervisor) BaseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || !s.cur.ready.Load() || s.cur.exited() {
		return ""
	}
	return s.cur.baseURL
}

// PID is the current (or last) ComfyUI process id, 0 before Start.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return s.cur.pgid
}

// LogTail returns up to n of the latest output lines of the current (or
// last) process, oldest first.
func (s *Supervisor) LogTail(n int) []string {
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.book.tail(n)
}

// ImportFailures lists the custom nodes the current (or last) process
// reported as IMPORT FAILED.
func (s *Supervisor) ImportFailures() []ImportFailure {
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.book.importFailures()
}
