// Package modeltest is a real HTTP model server on 127.0.0.1 for tests: it
// serves files with Range, If-Range and a strong ETag like Hugging Face
// and CDNs do, and injects the faults downloads meet in the wild (dropped
// connections, 5xx, wrong bytes, stalls, servers without Range, redirects,
// login pages).
package modeltest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"
)

// Fault changes how one request is answered. Faults queued for a path are
// used one per request, in order; later requests are served normally.
type Fault struct {
	// Status answers with this status and no file.
	Status int
	// RedirectTo answers 302 with this Location.
	RedirectTo string
	// HTML answers 200 with a small HTML page, like a login wall.
	HTML bool
	// NoRange ignores the Range header and sends the whole file with 200.
	NoRange bool
	// DropAfter > 0 closes the connection after that many body bytes.
	DropAfter int64
	// Corrupt flips the bits of the first body byte.
	Corrupt bool
	// StallAfter bytes, the body pauses for Stall (or until the client
	// goes away).
	StallAfter int64
	Stall      time.Duration
}

// Request is what the server saw.
type Request struct {
	Path          string
	Range         string
	IfRange       string
	Authorization string
}

type file struct {
	data   []byte // or
	osPath string
	size   int64
	etag   string
	rate   int64 // bytes per second, 0 = unlimited
	faults []Fault
}

// Server is a model file server. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string]*file
	requests []Request
	served   map[string]int64
	token    string
	active   int
	maxAct   int
}

// NewServer starts a server on 127.0.0.1. Close it when done.
func NewServer() *Server {
	s := &Server{files: map[string]*file{}, served: map[string]int64{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Add serves data at path (which starts with "/"), replacing what was
// there; the ETag changes with the content.
func (s *Server) Add(path string, data []byte) {
	sum := sha256.Sum256(data)
	s.put(path, &file{data: data, size: int64(len(data)), etag: `"` + hex.EncodeToString(sum[:8]) + `"`})
}

// AddFile serves a file from disk at path, sent with sendfile like a real
// server; its ETag derives from size and mtime.
func (s *Server) AddFile(path, osPath string) error {
	fi, err := os.Stat(osPath)
	if err != nil {
		return err
	}
	s.put(path, &file{osPath: osPath, size: fi.Size(), etag: `"` + hex.EncodeToString([]byte(fi.ModTime().String()))[:16] + `"`})
	return nil
}

func (s *Server) put(path string, f *file) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.files[path]; old != nil {
		f.rate, f.faults = old.rate, old.faults
	}
	s.files[path] = f
}

// Faults queues faults for the next requests of path.
func (s *Server) Faults(path string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.files[path]; f != nil {
		f.faults = append(f.faults, faults...)
	}
}

// Throttle limits the body rate of path to about bytesPerSec.
func (s *Server) Throttle(path string, bytesPerSec int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.files[path]; f != nil {
		f.rate = bytesPerSec
	}
}

// RequireToken makes every request without "Authorization: Bearer <tok>"
// answer 401.
func (s *Server) RequireToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = tok
}

// Requests returns the requests seen for path ("" for all).
func (s *Server) Requests(path string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// BytesServed is the number of body bytes written for path.
func (s *Server) BytesServed(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[path]
}

// MaxActive is the largest number of requests served at the same time.
func (s *Server) MaxActive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxAct
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.active++
	s.maxAct = max(s.maxAct, s.active)
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}()
	s.requests = append(s.requests, Request{Path: r.URL.Path, Range: r.Header.Get("Range"),
		IfRange: r.Header.Get("If-Range"), Authorization: r.Header.Get("Authorization")})
	f := s.files[r.URL.Path]
	var fault Fault
	if f != nil && len(f.faults) > 0 {
		fault, f.faults = f.faults[0], f.faults[1:]
	}
	var rate int64
	if f != nil {
		rate = f.rate
	}
	token := s.token
	s.mu.Unlock()

	switch {
	case token != "" && r.Header.Get("Authorization") != "Bearer "+token:
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	case f == nil:
		http.NotFound(w, r)
		return
	case fault.Status != 0:
		http.Error(w, http.StatusText(fault.Status), fault.Status)
		return
	case fault.RedirectTo != "":
		http.Redirect(w, r, fault.RedirectTo, http.StatusFound)
		return
	case fault.HTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html><body>Please log in</body></html>")
		return
	}

	var content io.ReadSeeker
	if f.data != nil {
		content = bytes.NewReader(f.data)
	} else {
		of, err := os.Open(f.osPath)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer of.Close()
		content = of
	}
	if fault.NoRange {
		r.Header.Del("Range")
	} else {
		w.Header().Set("ETag", f.etag)
		w.Header().Set("Accept-Ranges", "bytes")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	cw := &countingWriter{ResponseWriter: w, s: s, path: r.URL.Path}
	var out http.ResponseWriter = cw
	if fault != (Fault{}) || rate > 0 {
		out = &faultWriter{countingWriter: cw, f: fault, rate: rate, done: r.Context().Done()}
	}
	http.ServeContent(out, r, "", time.Time{}, content)
}

// countingWriter keeps ReadFrom reachable so plain responses use sendfile.
type countingWriter struct {
	http.ResponseWriter
	s    *Server
	path string
}

func (c *countingWriter) count(n int) {
	c.s.mu.Lock()
	c.s.served[c.path] += int64(n)
	c.s.mu.Unlock()
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.count(n)
	return n, err
}

func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	c.s.mu.Lock()
	c.s.served[c.path] += n
	c.s.mu.Unlock()
	return n, err
}

type faultWriter struct {
	*countingWriter
	f       Fault
	rate    int64
	written int64
	done    <-chan struct{}
}

func (w *faultWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk := p
		if w.rate > 0 && int64(len(chunk)) > w.rate/20+1 {
			chunk = chunk[:w.rate/20+1]
		}
		if w.f.DropAfter > 0 && w.written+int64(len(chunk)) > w.f.DropAfter {
			chunk = chunk[:w.f.DropAfter-w.written]
		}
		if w.f.Stall > 0 && w.written < w.f.StallAfter && w.written+int64(len(chunk)) > w.f.StallAfter {
			chunk = chunk[:w.f.StallAfter-w.written]
		}
		if w.f.Corrupt && w.written == 0 && len(chunk) > 0 {
			c := append([]byte(nil), chunk...)
			c[0] ^= 0xff
			if _, err := w.countingWriter.Write(c); err != nil {
				return total, err
			}
		} else if _, err := w.countingWriter.Write(chunk); err != nil {
			return total, err
		}
		w.written += int64(len(chunk))
		total += len(chunk)
		p = p[len(chunk):]
		if w.f.DropAfter > 0 && w.written >= w.f.DropAfter {
			w.Flush()
			// net/http closes the connection without finishing the body.
			panic(http.ErrAbortHandler)
		}
		if w.f.Stall > 0 && w.written == w.f.StallAfter {
			w.Flush()
			w.wait(w.f.Stall)
			w.f.Stall = 0
		}
		if w.rate > 0 {
			w.Flush()
			w.wait(time.Duration(int64(len(chunk)) * int64(time.Second) / w.rate))
		}
	}
	return total, nil
}

// ReadFrom hides the sendfile path so every byte passes through Write.
func (w *faultWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{w}, r)
}

func (w *faultWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *faultWriter) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.done:
		panic(http.ErrAbortHandler)
	}
}

// Path returns the URL of path on this server.
func (s *Server) Path(path string) string {
	return s.URL + "/" + strings.TrimPrefix(path, "/")
}
