// Package endpointtest is a fake of RunPod's public endpoint API, the side
// a caller of a deployed endpoint talks to (reference/protocols.md §1.11):
// POST /run and /runsync, GET or POST /status/{id} and /stream/{id}, POST
// /cancel/{id} and GET /health under /v2/{endpoint}/, with RunPod's answer
// shapes. Jobs follow a scripted Behavior; every request is recorded, and
// faults (status codes, slow answers) are injected per route. It listens on
// 127.0.0.1 only.
package endpointtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Route names one API call.
type Route string

// The routes the fake serves.
const (
	RouteRun     Route = "run"
	RouteRunSync Route = "runsync"
	RouteStatus  Route = "status"
	RouteStream  Route = "stream"
	RouteCancel  Route = "cancel"
	RouteHealth  Route = "health"
)

// Payload limits RunPod enforces.
const (
	maxRunBody     = 10 << 20
	maxRunSyncBody = 20 << 20
)

// Config configures a Server; zero values get the noted defaults.
type Config struct {
	// APIKey is accepted as "Authorization: Bearer <key>" or as the raw
	// key, as RunPod's docs show both. Default "test-key".
	APIKey string
	// EndpointID is the only endpoint served. Default "ep-test".
	EndpointID string
	// Default is the Behavior of jobs with none queued by Next.
	Default Behavior
}

// Server is the fake endpoint API. Create it with New; Close it.
type Server struct {
	// URL is the API base for a client: "http://127.0.0.1:<port>/v2".
	URL string
	cfg Config
	srv *httptest.Server
	// done ends held (delayed) requests when the server closes.
	done chan struct{}

	mu       sync.Mutex
	next     []Behavior
	jobs     map[string]*Job
	order    []string
	requests []Request
	faults   map[Route][]fault
	delays   map[Route]time.Duration
}

type fault struct {
	code int
	body string
}

// New starts a Server on 127.0.0.1.
func New(cfg Config) *Server {
	if cfg.APIKey == "" {
		cfg.APIKey = "test-key"
	}
	if cfg.EndpointID == "" {
		cfg.EndpointID = "ep-test"
	}
	s := &Server{cfg: cfg, done: make(chan struct{}), jobs: map[string]*Job{},
		faults: map[Route][]fault{}, delays: map[Route]time.Duration{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/{ep}/run", s.handle(RouteRun, s.submit(false)))
	mux.HandleFunc("POST /v2/{ep}/runsync", s.handle(RouteRunSync, s.submit(true)))
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /v2/{ep}/status/{id}", s.handle(RouteStatus, s.status))
		mux.HandleFunc(m+" /v2/{ep}/stream/{id}", s.handle(RouteStream, s.stream))
	}
	mux.HandleFunc("POST /v2/{ep}/cancel/{id}", s.handle(RouteCancel, s.cancel))
	mux.HandleFunc("GET /v2/{ep}/health", s.handle(RouteHealth, s.health))
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/v2"
	return s
}

// Close stops the server and ends held requests.
func (s *Server) Close() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.srv.Close()
}

// APIKey is the key the server accepts.
func (s *Server) APIKey() string { return s.cfg.APIKey }

// EndpointID is the endpoint the server serves.
func (s *Server) EndpointID() string { return s.cfg.EndpointID }

// Next queues the Behavior of the next submitted job (first in, first out).
func (s *Server) Next(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = append(s.next, b)
}

// Fail answers the next n requests on route with HTTP code and a JSON
// {"error": ...} body, before authentication.
func (s *Server) Fail(route Route, code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[route] = append(s.faults[route], fault{code, fmt.Sprintf(`{"error": "injected %d"}`, code)})
	}
}

// Delay holds every request on route for d before answering it (the
// request's own cancellation and Close end the hold early).
func (s *Server) Delay(route Route, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[route] = d
}

// Jobs returns the jobs submitted so far, in order.
func (s *Server) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.jobs[id])
	}
	return out
}

// Job returns one job by id.
func (s *Server) Job(id string) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return Job{}, false
	}
	return *j, true
}

// handle wraps a route: records the request, applies injected delays and
// faults, checks the endpoint and the key.
func (s *Server) handle(route Route, fn func(w http.ResponseWriter, r *http.Request, body []byte) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxRunSyncBody+1))
		rec := Request{Route: route, Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
			Authorization: r.Header.Get("Authorization"), Body: body, JobID: r.PathValue("id"), Time: time.Now()}
		s.mu.Lock()
		d := s.delays[route]
		var f *fault
		if q := s.faults[route]; len(q) > 0 {
			f, s.faults[route] = &q[0], q[1:]
		}
		s.mu.Unlock()
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
			case <-s.done:
			}
			t.Stop()
		}
		code, resp := 0, any(nil)
		switch {
		case f != nil:
			code, resp = f.code, json.RawMessage(f.body)
		case r.PathValue("ep") != s.cfg.EndpointID:
			code, resp = http.StatusNotFound, map[string]string{"error": "endpoint not found"}
		case !s.authorized(r.Header.Get("Authorization")):
			code, resp = http.StatusUnauthorized, map[string]string{"error": "Unauthorized"}
		default:
			code, resp = fn(w, r, body)
		}
		rec.Status = code
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(resp)
	}
}

func (s *Server) authorized(h string) bool {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		h = h[7:]
	}
	return h == s.cfg.APIKey
}

func errBody(msg string) map[string]string { return map[string]string{"error": msg} }

// submit serves /run and /runsync.
func (s *Server) submit(sync bool) func(http.ResponseWriter, *http.Request, []byte) (int, any) {
	return func(_ http.ResponseWriter, r *http.Request, body []byte) (int, any) {
		limit := maxRunBody
		if sync {
			limit = maxRunSyncBody
		}
		if len(body) > limit {
			return http.StatusRequestEntityTooLarge, errBody(fmt.Sprintf("payload over %d MB", limit>>20))
		}
		var req struct {
			Input   json.RawMessage `json:"input"`
			Webhook string          `json:"webhook"`
			Policy  json.RawMessage `json:"policy"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return http.StatusBadRequest, errBody("invalid JSON body: " + err.Error())
		}
		if t := strings.TrimSpace(string(req.Input)); !strings.HasPrefix(t, "{") {
			return http.StatusBadRequest, errBody(`"input" must be an object`)
		}
		id := uuid.NewString() + "-u1"
		if sync {
			id = "sync-" + id
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		b := s.cfg.Default
		if len(s.next) > 0 {
			b, s.next = s.next[0], s.next[1:]
		}
		j := &Job{ID: id, Sync: sync, Input: req.Input, Webhook: req.Webhook, Policy: req.Policy,
			Query: r.URL.Query(), Status: StatusInQueue, Behavior: b}
		s.jobs[id] = j
		s.order = append(s.order, id)
		if !sync {
			return http.StatusOK, map[string]string{"id": id, "status": StatusInQueue}
		}
		return http.StatusOK, j.observe()
	}
}

func (s *Server) status(_ http.ResponseWriter, r *http.Request, _ []byte) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[r.PathValue("id")]
	if !ok {
		return http.StatusNotFound, errBody("job not found")
	}
	return http.StatusOK, j.observe()
}

func (s *Server) stream(_ http.ResponseWriter, r *http.Request, _ []byte) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[r.PathValue("id")]
	if !ok {
		return http.StatusNotFound, errBody("job not found")
	}
	return http.StatusOK, map[string]any{"status": j.state(), "stream": j.takeStream()}
}

func (s *Server) cancel(_ http.ResponseWriter, r *http.Request, _ []byte) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[r.PathValue("id")]
	if !ok {
		return http.StatusNotFound, errBody("job not found")
	}
	if !terminal(j.state()) {
		j.Cancelled = true
	}
	j.Status = j.state()
	return http.StatusOK, map[string]string{"id": j.ID, "status": j.Status}
}

func (s *Server) health(http.ResponseWriter, *http.Request, []byte) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[string]int{"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0}
	for _, j := range s.jobs {
		switch j.state() {
		case StatusCompleted:
			counts["completed"]++
		case StatusFailed, StatusTimedOut:
			counts["failed"]++
		case StatusInProgress:
			counts["inProgress"]++
		case StatusInQueue:
			counts["inQueue"]++
		}
	}
	return http.StatusOK, map[string]any{"jobs": counts, "workers": map[string]int{"idle": 1, "running": counts["inProgress"]}}
}
