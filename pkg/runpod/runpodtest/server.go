// Package runpodtest is a fake of RunPod's serverless job API, the side a
// worker talks to: job-take (single and batch long polls), job-done (results
// and progress updates), job-stream, the heartbeat ping and the per-job stop
// channel. It speaks the wire protocol of reference/protocols.md Part 1 as the
// official Python SDK v1.12.0 was observed to use it, records every request
// for assertions, and injects faults (status codes, dropped connections, slow
// answers) on demand. It listens on 127.0.0.1 only.
package runpodtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Route names one of the worker-facing calls.
type Route string

// The routes the fake serves, under /v2/<endpoint>/.
const (
	RouteTake      Route = "job-take"
	RouteTakeBatch Route = "job-take-batch"
	RouteDone      Route = "job-done"
	RouteStream    Route = "job-stream"
	RoutePing      Route = "ping"
	RouteStop      Route = "job-stop"
)

// Job states as RunPod's /status reports them.
const (
	StateQueued     = "IN_QUEUE"
	StateInProgress = "IN_PROGRESS"
	StateCompleted  = "COMPLETED"
	StateFailed     = "FAILED"
	StateCancelled  = "CANCELLED"
)

// Options configure a Server. Zero values get the defaults noted per field.
type Options struct {
	// APIKey is the only Authorization value accepted (raw, no "Bearer ").
	// Default "test-key".
	APIKey string
	// Endpoint is the endpoint id in the path. Default "ep1".
	Endpoint string
	// Query is the query string put into every URL template, as RunPod does
	// with "gpu=...". Default "gpu=TEST"; set NoQuery for templates without
	// any query string.
	Query   string
	NoQuery bool
	// LongPoll is how long an empty job-take or stop poll is held before it
	// is answered. Default 100ms.
	LongPoll time.Duration
	// EmptyStatus answers an empty job-take: 204 (default) or 400, which
	// RunPod sends when FlashBoot is enabled.
	EmptyStatus int
}

// Job is one job the fake hands out. Input is marshalled to JSON; a
// json.RawMessage is sent as is.
type Job struct {
	ID    string
	Input any
}

// Server is the fake job API. Create it with New and Close it when done.
type Server struct {
	opts Options
	srv  *httptest.Server
	base string

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every state change
	queue    []response
	faults   map[Route][]Fault
	requests []Request
	posts    []Post
	pings    []Ping
	stops    []string
	states   map[string]string
	authFail int
}

// response is one answer to a job-take: a single object, a list, or raw bytes.
type response struct {
	jobs   []Job
	list   bool
	isRaw  bool
	raw    []byte
	status int
}

// New starts a fake on 127.0.0.1.
func New(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = "test-key"
	}
	if opts.Endpoint == "" {
		opts.Endpoint = "ep1"
	}
	if opts.Query == "" && !opts.NoQuery {
		opts.Query = "gpu=TEST"
	}
	if opts.NoQuery {
		opts.Query = ""
	}
	if opts.LongPoll <= 0 {
		opts.LongPoll = 100 * time.Millisecond
	}
	if opts.EmptyStatus == 0 {
		opts.EmptyStatus = http.StatusNoContent
	}
	s := &Server{
		opts:    opts,
		changed: make(chan struct{}),
		faults:  map[Route][]Fault{},
		states:  map[string]string{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.base = s.srv.URL + "/v2/" + opts.Endpoint
	return s
}

// Close shuts the server down, ending any held long polls.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// URL is the server's root, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.srv.URL }

// APIKey is the key the server accepts.
func (s *Server) APIKey() string { return s.opts.APIKey }

func (s *Server) template(path string) string {
	if s.opts.Query == "" {
		return s.base + path
	}
	return s.base + path + "?" + s.opts.Query
}

// Env returns the RUNPOD_* variables a worker on this fake would see, with
// the placeholders the platform uses ($ID, $RUNPOD_POD_ID) left in the URL
// templates for the worker to substitute. The pod id is "w1" and the ping
// interval 1000 ms; change entries as a test needs.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"RUNPOD_WEBHOOK_GET_JOB":     s.template("/job-take/$ID"),
		"RUNPOD_WEBHOOK_POST_OUTPUT": s.template("/job-done/$RUNPOD_POD_ID/$ID"),
		"RUNPOD_WEBHOOK_POST_STREAM": s.template("/job-stream/$RUNPOD_POD_ID/$ID"),
		"RUNPOD_WEBHOOK_PING":        s.template("/ping/$RUNPOD_POD_ID"),
		"RUNPOD_AI_API_KEY":          s.opts.APIKey,
		"RUNPOD_POD_ID":              "w1",
		"RUNPOD_PING_INTERVAL":       "1000",
	}
}

// Getenv adapts an env map (such as Env's, edited) to a getenv function.
func Getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// notify wakes every waiter. Call with s.mu held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// AddJobs queues jobs, each handed out by its own job-take as a single JSON
// object (the legacy shape), or several per batch take.
func (s *Server) AddJobs(jobs ...Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range jobs {
		s.queue = append(s.queue, response{jobs: []Job{j}})
		s.states[j.ID] = StateQueued
	}
	s.notify()
}

// AddList queues jobs that the next job-take answers together as one JSON
// array, even on the plain /job-take/ route.
func (s *Server) AddList(jobs ...Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, response{jobs: jobs, list: true})
	for _, j := range jobs {
		s.states[j.ID] = StateQueued
	}
	s.notify()
}

// AddRaw queues a verbatim answer to the next job-take, for malformed
// responses (missing fields, bad JSON, odd content types: the body is sent as
// application/json).
func (s *Server) AddRaw(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	s.queue = append(s.queue, response{isRaw: true, raw: []byte(body), status: status})
	s.notify()
}

// StopJobs marks jobs cancelled and hands their ids to the next stop poll as
// {"jobsToStop": [...]}, as RunPod does when a request is cancelled or times
// out.
func (s *Server) StopJobs(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops = append(s.stops, ids...)
	for _, id := range ids {
		s.states[id] = StateCancelled
	}
	s.notify()
}

// Queued is the number of take answers not yet handed out.
func (s *Server) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// State is a job's state as the platform sees it ("" when unknown).
func (s *Server) State(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[id]
}

// AuthFailures counts requests refused for a wrong or missing key.
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFail
}

// Wait blocks until cond returns true or ctx ends. cond is re-checked after
// every request the server sees; it may call the server's accessors.
func (s *Server) Wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serve parses /v2/<endpoint>/<route>/<worker>[/<job>], records the request,
// checks the key, applies any fault and dispatches.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/"+s.opts.Endpoint+"/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(rest, "/")
	route := Route(parts[0])
	var want int
	method := http.MethodGet
	switch route {
	case RouteTake, RouteTakeBatch, RoutePing, RouteStop:
		want = 2
	case RouteDone, RouteStream:
		want, method = 3, http.MethodPost
	default:
		http.NotFound(w, r)
		return
	}
	if len(parts) != want || parts[1] == "" || (want == 3 && parts[2] == "") {
		http.NotFound(w, r)
		return
	}
	req := s.record(route, parts, r)
	if r.Method != method {
		s.finish(req, http.StatusMethodNotAllowed)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Authorization") != s.opts.APIKey {
		s.mu.Lock()
		s.authFail++
		s.mu.Unlock()
		s.finish(req, http.StatusUnauthorized)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid api key"})
		return
	}
	if f, ok := s.nextFault(route); ok {
		if done := s.apply(f, req, w, r); done {
			return
		}
	}
	switch route {
	case RouteTake, RouteTakeBatch:
		s.take(req, w, r)
	case RouteDone, RouteStream:
		s.post(req, w, r)
	case RoutePing:
		s.ping(req, w, r)
	case RouteStop:
		s.stop(req, w, r)
	}
}
