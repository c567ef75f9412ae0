package endpointtest

import (
	"net/url"
	"time"
)

// Request is one request as the server received and answered it.
type Request struct {
	Route         Route
	Method        string
	Path          string
	Query         url.Values
	Authorization string
	Body          []byte
	// JobID is the {id} of /status, /stream and /cancel.
	JobID string
	Time  time.Time
	// Status is the HTTP status the server answered.
	Status int
}

// Requests returns every request so far, in the order they were answered;
// with routes, only those.
func (s *Server) Requests(routes ...Route) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if len(routes) == 0 || contains(routes, r.Route) {
			out = append(out, r)
		}
	}
	return out
}

// Count is the number of requests on route so far.
func (s *Server) Count(route Route) int { return len(s.Requests(route)) }

func contains(rs []Route, r Route) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}
