package runpodtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Request is one request as the server received it.
type Request struct {
	Route    Route
	Method   string
	Path     string
	RawQuery string
	Query    url.Values
	Header   http.Header
	Body     []byte
	WorkerID string
	JobID    string // job-done and job-stream only
	Time     time.Time
	// Status is what the server answered; 0 for a dropped connection or
	// while the request is still being served (a held long poll).
	Status int
	// Answered is when the answer was decided: for a long poll that was
	// held, the moment a job (or the timeout) released it.
	Answered time.Time

	idx int // position in Server.requests, for finish
}

// Post is an accepted job-done or job-stream POST, decoded.
type Post struct {
	Request
	// Status is the body's "status": "IN_PROGRESS" marks a progress update.
	BodyStatus string
	Output     json.RawMessage // nil when the body has no "output" key
	Error      json.RawMessage // nil when the body has no "error" key
	StopPod    bool
	// Keys lists the body's top-level keys, to assert exact shapes.
	Keys []string
}

// IsProgress tells a progress update from a final result.
func (p Post) IsProgress() bool { return p.BodyStatus == StateInProgress }

// ErrorString is the "error" value when it is a JSON string, else its raw
// JSON text.
func (p Post) ErrorString() string {
	var s string
	if json.Unmarshal(p.Error, &s) == nil {
		return s
	}
	return string(p.Error)
}

// Ping is one heartbeat.
type Ping struct {
	Time     time.Time
	WorkerID string
	// JobIDs is the job_id list, nil when the parameter was omitted.
	JobIDs         []string
	RunpodVersion  string
	RawQuery       string
	HasJobIDsParam bool
}

// record stores a request before it is handled so that held long polls and
// faulted requests are visible too.
func (s *Server) record(route Route, parts []string, r *http.Request) *Request {
	body := readBody(r)
	req := &Request{
		Route:    route,
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Query:    r.URL.Query(),
		Header:   r.Header.Clone(),
		Body:     body,
		WorkerID: parts[1],
		Time:     time.Now(),
	}
	if len(parts) == 3 {
		req.JobID = parts[2]
	}
	s.mu.Lock()
	req.idx = len(s.requests)
	s.requests = append(s.requests, *req)
	s.notify()
	s.mu.Unlock()
	return req
}

// maxBody bounds what a request body may hold.
const maxBody = 64 << 20

// readBody reads a request body, in one read when its length is announced
// (so that the fake's own reading costs what a server's minimum would).
func readBody(r *http.Request) []byte {
	if n := r.ContentLength; n > 0 && n <= maxBody {
		body := make([]byte, n)
		k, _ := io.ReadFull(r.Body, body)
		return body[:k]
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	return body
}

// finish records the status answered to req.
func (s *Server) finish(req *Request, status int) {
	req.Status, req.Answered = status, time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[req.idx].Status = status
	s.requests[req.idx].Answered = req.Answered
	s.notify()
}

// Requests returns the requests received on route, or on every route when
// route is "". Held long polls are included with Status 0.
func (s *Server) Requests(route Route) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if route == "" || r.Route == route {
			out = append(out, r)
		}
	}
	return out
}

// Takes returns the job-take requests (single and batch) received.
func (s *Server) Takes() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Route == RouteTake || r.Route == RouteTakeBatch {
			out = append(out, r)
		}
	}
	return out
}

// Results returns the accepted final results (job-done posts that are not
// progress updates) for jobID, or for every job when jobID is "".
func (s *Server) Results(jobID string) []Post {
	return s.filterPosts(jobID, func(p Post) bool { return p.Route == RouteDone && !p.IsProgress() })
}

// Progress returns the accepted progress updates for jobID ("" = all jobs).
func (s *Server) Progress(jobID string) []Post {
	return s.filterPosts(jobID, func(p Post) bool { return p.IsProgress() })
}

// Posts returns every accepted job-done and job-stream post for jobID ("" =
// all), in arrival order.
func (s *Server) Posts(jobID string) []Post {
	return s.filterPosts(jobID, func(Post) bool { return true })
}

func (s *Server) filterPosts(jobID string, keep func(Post) bool) []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Post
	for _, p := range s.posts {
		if (jobID == "" || p.JobID == jobID) && keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// Pings returns the heartbeats received with the right key.
func (s *Server) Pings() []Ping {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ping(nil), s.pings...)
}

// WaitResult waits for the first accepted final result of jobID.
func (s *Server) WaitResult(ctx context.Context, jobID string) (Post, error) {
	var got Post
	err := s.Wait(ctx, func() bool {
		rs := s.Results(jobID)
		if len(rs) > 0 {
			got = rs[0]
			return true
		}
		return false
	})
	return got, err
}

// MustResult is WaitResult for a test: it fails tb when no result of
// jobID arrives within 90 s (a job of a real worker process).
func (s *Server) MustResult(tb interface {
	Helper()
	Fatalf(string, ...any)
}, jobID string) Post {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := s.WaitResult(ctx, jobID)
	if err != nil {
		tb.Fatalf("no result for %s: %v", jobID, err)
	}
	return p
}

// WaitProgress waits until jobID has at least n accepted progress updates.
func (s *Server) WaitProgress(ctx context.Context, jobID string, n int) ([]Post, error) {
	var got []Post
	err := s.Wait(ctx, func() bool {
		got = s.Progress(jobID)
		return len(got) >= n
	})
	return got, err
}

// WaitPings waits until n pings satisfying match (nil = any) have arrived
// and returns them.
func (s *Server) WaitPings(ctx context.Context, n int, match func(Ping) bool) ([]Ping, error) {
	var got []Ping
	err := s.Wait(ctx, func() bool {
		got = got[:0]
		for _, p := range s.Pings() {
			if match == nil || match(p) {
				got = append(got, p)
			}
		}
		return len(got) >= n
	})
	return got, err
}

// WaitRequests waits until route has received at least n requests.
func (s *Server) WaitRequests(ctx context.Context, route Route, n int) ([]Request, error) {
	var got []Request
	err := s.Wait(ctx, func() bool {
		got = s.Requests(route)
		return len(got) >= n
	})
	return got, err
}

// decodePost checks a job-done / job-stream body: JSON object with only the
// keys the protocol knows.
func decodePost(req *Request) (Post, bool) {
	p := Post{Request: *req}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &m); err != nil || m == nil {
		return p, false
	}
	for k, v := range m {
		p.Keys = append(p.Keys, k)
		switch k {
		case "output":
			p.Output = v
		case "error":
			p.Error = v
		case "stopPod":
			if json.Unmarshal(v, &p.StopPod) != nil {
				return p, false
			}
		case "status":
			if json.Unmarshal(v, &p.BodyStatus) != nil {
				return p, false
			}
		}
	}
	slices.Sort(p.Keys)
	return p, true
}
