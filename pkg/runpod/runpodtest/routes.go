package runpodtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is what the server does instead of (or before) answering one request.
type Fault struct {
	// Status, when non-zero, is answered with a small JSON error body.
	Status int
	// Drop closes the connection without any response.
	Drop bool
	// Delay holds the request first; with neither Status nor Drop set the
	// request is then served normally (a slow answer). A client that gives
	// up during the delay gets nothing recorded as accepted.
	Delay time.Duration
}

// Inject queues faults for the next requests on route, one fault per
// request in order. Faults for RouteTake also apply to batch takes.
func (s *Server) Inject(route Route, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[route] = append(s.faults[route], faults...)
}

func (s *Server) nextFault(route Route) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if route == RouteTakeBatch && len(s.faults[RouteTakeBatch]) == 0 {
		route = RouteTake
	}
	q := s.faults[route]
	if len(q) == 0 {
		return Fault{}, false
	}
	s.faults[route] = q[1:]
	return q[0], true
}

// apply carries out f; it reports whether the request has been answered.
func (s *Server) apply(f Fault, req *Request, w http.ResponseWriter, r *http.Request) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			s.finish(req, 0)
			return true
		}
	}
	switch {
	case f.Drop:
		s.finish(req, 0)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		// Without hijacking, aborting the handler also kills the connection.
		panic(http.ErrAbortHandler)
	case f.Status != 0:
		s.finish(req, f.Status)
		writeJSON(w, f.Status, map[string]string{"error": "injected fault"})
		return true
	}
	return false
}

// take serves job-take and job-take-batch as long polls.
func (s *Server) take(req *Request, w http.ResponseWriter, r *http.Request) {
	max := 1
	if req.Route == RouteTakeBatch {
		if n, err := strconv.Atoi(r.URL.Query().Get("batch_size")); err == nil && n > 0 {
			max = n
		}
	}
	timer := time.NewTimer(s.opts.LongPoll)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if r.Context().Err() != nil {
			s.mu.Unlock()
			s.finish(req, 0)
			return
		}
		if len(s.queue) > 0 {
			status, body := s.popLocked(req.Route == RouteTakeBatch, max)
			s.mu.Unlock()
			s.finish(req, status)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(body)
			return
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			s.finish(req, s.opts.EmptyStatus)
			w.WriteHeader(s.opts.EmptyStatus)
			return
		case <-r.Context().Done():
			s.finish(req, 0)
			return
		}
	}
}

type wireJob struct {
	ID    string `json:"id"`
	Input any    `json:"input"`
}

// popLocked takes the next answer off the queue. A batch take gathers up to
// max jobs into one array; a plain take hands out one queued answer as is.
func (s *Server) popLocked(batch bool, max int) (int, []byte) {
	head := s.queue[0]
	if head.isRaw {
		s.queue = s.queue[1:]
		return head.status, head.raw
	}
	var jobs []Job
	list := head.list || batch
	if batch {
		for len(s.queue) > 0 && !s.queue[0].isRaw && len(jobs) < max {
			jobs = append(jobs, s.queue[0].jobs...)
			s.queue = s.queue[1:]
		}
	} else {
		jobs = head.jobs
		s.queue = s.queue[1:]
	}
	wire := make([]wireJob, len(jobs))
	for i, j := range jobs {
		wire[i] = wireJob{ID: j.ID, Input: j.Input}
		s.states[j.ID] = StateInProgress
	}
	s.notify()
	var body []byte
	if list {
		body, _ = json.Marshal(wire)
	} else {
		body, _ = json.Marshal(wire[0])
	}
	return http.StatusOK, body
}

// post accepts a result, progress update or stream chunk.
func (s *Server) post(req *Request, w http.ResponseWriter, r *http.Request) {
	p, ok := decodePost(req)
	if !ok {
		s.finish(req, http.StatusBadRequest)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not a JSON object"})
		return
	}
	if r.Context().Err() != nil { // the client gave up: nothing was delivered
		s.finish(req, 0)
		return
	}
	p.Request.Status = http.StatusOK
	s.mu.Lock()
	s.posts = append(s.posts, p)
	if req.Route == RouteDone && !p.IsProgress() && s.states[req.JobID] != StateCancelled {
		if p.Error != nil {
			s.states[req.JobID] = StateFailed
		} else {
			s.states[req.JobID] = StateCompleted
		}
	}
	s.mu.Unlock()
	s.finish(req, http.StatusOK)
	writeJSON(w, http.StatusOK, map[string]any{})
}

// ping records a heartbeat; the platform ignores its body, and so does the
// worker.
func (s *Server) ping(req *Request, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := Ping{
		Time:          req.Time,
		WorkerID:      req.WorkerID,
		RunpodVersion: q.Get("runpod_version"),
		RawQuery:      r.URL.RawQuery,
	}
	if _, ok := q["job_id"]; ok {
		p.HasJobIDsParam = true
		p.JobIDs = strings.Split(q.Get("job_id"), ",")
	}
	s.mu.Lock()
	s.pings = append(s.pings, p)
	s.mu.Unlock()
	s.finish(req, http.StatusOK)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
}

// stop serves the per-job stop channel as a long poll.
func (s *Server) stop(req *Request, w http.ResponseWriter, r *http.Request) {
	timer := time.NewTimer(s.opts.LongPoll)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.stops) > 0 && r.Context().Err() == nil {
			ids := s.stops
			s.stops = nil
			s.mu.Unlock()
			s.finish(req, http.StatusOK)
			writeJSON(w, http.StatusOK, map[string][]string{"jobsToStop": ids})
			return
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			s.finish(req, http.StatusNoContent)
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			s.finish(req, 0)
			return
		}
	}
}
