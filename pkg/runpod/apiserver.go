package runpod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// Defaults of the SDK's --rp_api_host and --rp_api_port.
const (
	DefaultAPIHost = "localhost"
	DefaultAPIPort = 8000
)

const (
	maxRequestBody  = 20 << 20 // RunPod's /runsync payload limit
	keepFinished    = 1000     // finished jobs remembered for /status
	webhookTimeout  = 10 * time.Second
	shutdownTimeout = 5 * time.Second
)

// Job states as RunPod's API reports them.
const (
	StatusInQueue    = "IN_QUEUE"
	StatusInProgress = "IN_PROGRESS"
	StatusCompleted  = "COMPLETED"
	StatusFailed     = "FAILED"
)

// APIServer is the SDK's local test API (--rp_serve_api): POST /run queues a
// job and answers {"id": "test-<uuid>", "status": "IN_PROGRESS"}; POST
// /runsync runs one and answers with its result; /status/{id} (GET or POST)
// reports a job; GET /health reports counts in RunPod's /health shape. Unlike
// the SDK, /run really runs the job in the background (one job at a time, in
// order), so /status can be polled as against RunPod itself.
type APIServer struct {
	h    Handler
	log  zerolog.Logger
	hc   *http.Client
	info workerInfo
	// endpointID adds the SDK's POST /{RUNPOD_ENDPOINT_ID}/realtime.
	endpointID string

	mu        sync.Mutex
	changed   chan struct{}
	jobs      map[string]*apiJob
	queue     []*apiJob
	finished  []string // ids in finishing order, for eviction
	completed int
	failed    int
	running   bool
	stopping  bool

	bg sync.WaitGroup // runner and webhook posts
}

type apiJob struct {
	id      string
	input   json.RawMessage
	webhook string
	status  string
	output  json.RawMessage // last progress value, then the final output
	err     string
}

// NewAPIServer prepares a local API server for h; cfg supplies the hostname
// and worker id for internal-error details. Nothing runs until Serve.
func NewAPIServer(h Handler, cfg Config, opts ...Option) *APIServer {
	o := buildOptions(opts)
	cfg = cfg.withDefaults()
	id := cfg.PodID
	if id == "" {
		id = "local"
	}
	return &APIServer{
		h: h, log: o.log, hc: o.hc, endpointID: cfg.EndpointID,
		info:    workerInfo{hostname: cfg.Hostname, workerID: id, runpodVersion: cfg.RunpodVersion},
		changed: make(chan struct{}),
		jobs:    map[string]*apiJob{},
	}
}

// ListenAndServe serves on host:port until ctx ends.
func (s *APIServer) ListenAndServe(ctx context.Context, host string, port int) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("local API server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then cancels the running job, fails the
// queued ones, and waits for its goroutines. It returns nil after a clean
// shutdown.
func (s *APIServer) Serve(ctx context.Context, ln net.Listener) error {
	if s.h == nil {
		ln.Close()
		return errors.New("local API server: nil handler")
	}
	runCtx, cancelRun := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRun(nil)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /run", s.handleRun)
	mux.HandleFunc("POST /runsync", s.handleRunSync)
	mux.HandleFunc("GET /status/{id}", s.handleStatus)
	mux.HandleFunc("POST /status/{id}", s.handleStatus)
	mux.HandleFunc("POST /stream/{id}", s.handleStream)
	mux.HandleFunc("GET /health", s.handleHealth)
	if s.endpointID != "" {
		if validEndpointID.MatchString(s.endpointID) {
			mux.HandleFunc("POST /"+s.endpointID+"/realtime", s.handleRealtime)
		} else {
			s.log.Warn().Str("endpoint_id", s.endpointID).Msg("RUNPOD_ENDPOINT_ID is not a plain id; no /realtime route")
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAPI(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.bg.Go(func() { s.runner(runCtx) })
	s.log.Info().Str("addr", ln.Addr().String()).Msg("local RunPod API listening: POST /run, /runsync, /status/{id}, /stream/{id}; GET /health")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	// Stop the jobs first so /runsync requests blocked on them can answer.
	s.mu.Lock()
	s.stopping = true
	s.notifyLocked()
	s.mu.Unlock()
	cancelRun(ErrShutdown)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	if err == nil {
		err = <-errc
	}
	s.bg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *APIServer) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func writeAPI(w http.ResponseWriter, status int, v any) {
	body, err := marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"detail": "response could not be encoded"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// decodeRequest reads {"input": {...}, "webhook": "..."}; like the SDK's
// FastAPI model, input must be an object (422 otherwise).
func decodeRequest(w http.ResponseWriter, r *http.Request) (*apiJob, bool) {
	var req struct {
		Input   json.RawMessage `json:"input"`
		Webhook string          `json:"webhook"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeAPI(w, http.StatusRequestEntityTooLarge, map[string]any{"detail": "request body exceeds 20 MB"})
			return nil, false
		}
		writeAPI(w, http.StatusUnprocessableEntity, validationError("body", "JSON decode error: "+err.Error(), "json_invalid"))
		return nil, false
	}
	if t := bytes.TrimSpace(req.Input); len(t) == 0 || t[0] != '{' {
		writeAPI(w, http.StatusUnprocessableEntity, validationError("input", "Input should be a valid dictionary", "dict_type"))
		return nil, false
	}
	return &apiJob{id: "test-" + uuid.NewString(), input: req.Input, webhook: req.Webhook, status: StatusInQueue}, true
}

// validationError mimics FastAPI's 422 body.
func validationError(field, msg, typ string) map[string]any {
	return map[string]any{"detail": []map[string]any{{"loc": []string{"body", field}, "msg": msg, "type": typ}}}
}

func (s *APIServer) enqueue(j *apiJob) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.jobs[j.id] = j
	s.queue = append(s.queue, j)
	s.notifyLocked()
	return true
}

func (s *APIServer) handleRun(w http.ResponseWriter, r *http.Request) {
	j, ok := decodeRequest(w, r)
	if !ok {
		return
	}
	if !s.enqueue(j) {
		writeAPI(w, http.StatusServiceUnavailable, map[string]any{"detail": "server is shutting down"})
		return
	}
	writeAPI(w, http.StatusOK, map[string]any{"id": j.id, "status": StatusInProgress})
}

func (s *APIServer) handleRunSync(w http.ResponseWriter, r *http.Request) {
	j, ok := decodeRequest(w, r)
	if !ok {
		return
	}
	if !s.enqueue(j) {
		writeAPI(w, http.StatusServiceUnavailable, map[string]any{"detail": "server is shutting down"})
		return
	}
	if !s.waitDone(r.Context(), j) {
		return
	}
	writeAPI(w, http.StatusOK, s.statusBody(j.id))
}

// validEndpointID is what may go into a route pattern.
var validEndpointID = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// handleStream answers as the SDK does for a handler that is not a
// generator (this worker's never is).
func (s *APIServer) handleStream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	known := s.jobs[id] != nil
	s.mu.Unlock()
	if !known {
		writeAPI(w, http.StatusOK, map[string]any{"id": id, "status": StatusFailed, "error": "Job ID not found"})
		return
	}
	writeAPI(w, http.StatusOK, map[string]any{"id": id, "status": StatusFailed, "error": "Stream not supported, handler must be a generator."})
}

// handleRealtime is the SDK's realtime route: {"id", "input"} in, the raw
// job result out ({"output": ...}, {"error": ...}), like a job-done body.
func (s *APIServer) handleRealtime(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID    string          `json:"id"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(&req); err != nil {
		writeAPI(w, http.StatusUnprocessableEntity, validationError("body", "JSON decode error: "+err.Error(), "json_invalid"))
		return
	}
	if t := bytes.TrimSpace(req.Input); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		writeAPI(w, http.StatusOK, map[string]any{"error": "Job has no input parameter."})
		return
	}
	if req.ID == "" {
		req.ID = "realtime-" + uuid.NewString()
	}
	j := &apiJob{id: req.ID, input: req.Input, status: StatusInQueue}
	if !s.enqueue(j) {
		writeAPI(w, http.StatusServiceUnavailable, map[string]any{"detail": "server is shutting down"})
		return
	}
	if !s.waitDone(r.Context(), j) {
		return
	}
	s.mu.Lock()
	res := Result{Error: j.err}
	if j.output != nil {
		res.Output = j.output
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(encodeResult(res).bytes())
}

// waitDone waits for j to finish; false if the client left first.
func (s *APIServer) waitDone(ctx context.Context, j *apiJob) bool {
	for {
		s.mu.Lock()
		done, ch := j.status == StatusCompleted || j.status == StatusFailed, s.changed
		s.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false // the job still runs and stays in /status
		}
	}
}

func (s *APIServer) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeAPI(w, http.StatusOK, s.statusBody(r.PathValue("id")))
}

// statusBody is the SDK's status shape; fields that do not apply are left
// out, as FastAPI drops None values.
func (s *APIServer) statusBody(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return map[string]any{"id": id, "status": StatusFailed, "error": "Job ID not found"}
	}
	body := map[string]any{"id": j.id, "status": j.status}
	if j.output != nil {
		body["output"] = j.output
	}
	if j.err != "" {
		body["error"] = j.err
	}
	return body
}

func (s *APIServer) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	inQueue, inProgress := len(s.queue), 0
	if s.running {
		inProgress = 1
	}
	body := map[string]any{
		"jobs": map[string]int{
			"completed": s.completed, "failed": s.failed,
			"inProgress": inProgress, "inQueue": inQueue, "retried": 0,
		},
		"workers": map[string]int{"idle": 1 - inProgress, "running": inProgress},
	}
	s.mu.Unlock()
	writeAPI(w, http.StatusOK, body)
}
