package urlfetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fileServer serves test inputs on 127.0.0.1:
//
//	/file?n=N       N bytes with a Content-Length
//	/chunked?n=N    N bytes, streamed without one
//	/stall-head     never answers
//	/stall-body     sends a little, then stalls
//	/redirect?to=U  302 to U
//	/hops?n=N       N redirects in a row, then /file?n=1
//	/status?code=C  answers C
type fileServer struct {
	*httptest.Server
	release chan struct{}
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func newFileServer(t *testing.T, tlsOn bool) *fileServer {
	t.Helper()
	fs := &fileServer{release: make(chan struct{})}
	mux := http.NewServeMux()
	num := func(r *http.Request, k string) int { n, _ := strconv.Atoi(r.URL.Query().Get(k)); return n }
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(num(r, "n")))
		_, _ = w.Write(payload(num(r, "n")))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		data := payload(num(r, "n"))
		for len(data) > 0 {
			k := min(len(data), 1000)
			if _, err := w.Write(data[:k]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			data = data[k:]
		}
	})
	mux.HandleFunc("/stall-head", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-fs.release:
		}
	})
	mux.HandleFunc("/stall-body", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-fs.release:
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/hops", func(w http.ResponseWriter, r *http.Request) {
		if n := num(r, "n"); n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/hops?n=%d", n-1), http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("x"))
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(num(r, "code"))
	})
	if tlsOn {
		fs.Server = httptest.NewTLSServer(mux)
	} else {
		fs.Server = httptest.NewServer(mux)
	}
	t.Cleanup(func() {
		close(fs.release)
		fs.Close()
	})
	return fs
}

// port is the server's port, for URLs that name it through another host.
func (fs *fileServer) port() string {
	return fs.URL[strings.LastIndex(fs.URL, ":")+1:]
}

func loopbackFetcher(t *testing.T, mut func(*Config)) *Fetcher {
	t.Helper()
	cfg := Config{AllowHTTP: true, AllowLoopback: true, Timeout: 5 * time.Second}
	if mut != nil {
		mut(&cfg)
	}
	f := New(cfg)
	t.Cleanup(f.CloseIdleConnections)
	return f
}

func TestFetchLocalServer(t *testing.T) {
	plain := newFileServer(t, false)
	secure := newFileServer(t, true)
	roots := secure.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	tests := []struct {
		name string
		url  string
		cfg  func(*Config)
		n    int
	}{
		{name: "http with a length", url: plain.URL + "/file?n=5000", n: 5000},
		{name: "http chunked", url: plain.URL + "/chunked?n=12345", n: 12345},
		{name: "https", url: secure.URL + "/file?n=777", n: 777,
			cfg: func(c *Config) { c.AllowHTTP = false; c.TLSConfig = &tls.Config{RootCAs: roots} }},
		{name: "exactly at the limit", url: plain.URL + "/chunked?n=4096", n: 4096, cfg: func(c *Config) { c.MaxBytes = 4096 }},
		{name: "a listed host skips the guard", url: "http://files.test:" + plain.port() + "/file?n=10", n: 10,
			cfg: func(c *Config) {
				c.AllowLoopback = false
				c.AllowedHosts = []string{"files.test"}
				c.Resolver = fakeResolver{"files.test": {"127.0.0.1"}}
			}},
		{name: "a few redirects", url: plain.URL + "/hops?n=3", n: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := loopbackFetcher(t, tc.cfg)
			got, err := f.Get(context.Background(), tc.url)
			if err != nil {
				t.Fatal(err)
			}
			want := payload(tc.n)
			if tc.name == "a few redirects" {
				want = []byte("x")
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

func TestFetchSizeLimit(t *testing.T) {
	srv := newFileServer(t, false)
	tests := []struct {
		name     string
		path     string
		wantSize int64 // what the error reports; -1 when unknown
	}{
		{name: "Content-Length over the limit fails before reading", path: "/file?n=5000", wantSize: 5000},
		{name: "chunked body over the limit fails while reading", path: "/chunked?n=5000", wantSize: -1},
		{name: "one byte over", path: "/chunked?n=4097", wantSize: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := loopbackFetcher(t, func(c *Config) { c.MaxBytes = 4096 })
			got, err := f.Get(context.Background(), srv.URL+tc.path)
			var tl *TooLargeError
			if !errors.As(err, &tl) || tl.Size != tc.wantSize || tl.Limit != 4096 {
				t.Fatalf("Get = %d bytes, %v; want a *TooLargeError of size %d", len(got), err, tc.wantSize)
			}
			// Download leaves nothing behind on failure.
			dst := filepath.Join(t.TempDir(), "in.png")
			if _, err := f.Download(context.Background(), srv.URL+tc.path, dst); !errors.As(err, &tl) {
				t.Fatalf("Download error %v", err)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed download left %s", dst)
			}
		})
	}
}

func TestFetchTimeout(t *testing.T) {
	srv := newFileServer(t, false)
	for _, path := range []string{"/stall-head", "/stall-body"} {
		t.Run(path, func(t *testing.T) {
			f := loopbackFetcher(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
			start := time.Now()
			_, err := f.Get(context.Background(), srv.URL+path)
			var te *TimeoutError
			if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v (%T), want a *TimeoutError", err, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("gave up after %s, want about 200ms", d)
			}
		})
	}
	// The caller's own cancellation is reported as that, not as a timeout.
	f := loopbackFetcher(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := f.Get(ctx, srv.URL+"/stall-head")
	var te *TimeoutError
	if err == nil || errors.As(err, &te) {
		t.Fatalf("error %v, want the caller's deadline", err)
	}
}

func TestFetchRedirects(t *testing.T) {
	srv := newFileServer(t, false)
	// The server is reached by a listed name, so loopback stays refused
	// for everything else.
	cfg := func(c *Config) {
		c.AllowLoopback = false
		c.AllowedHosts = []string{"files.test"}
		c.Resolver = fakeResolver{"files.test": {"127.0.0.1"}, "rebind.test": {"127.0.0.1"}}
	}
	base := "http://files.test:" + srv.port()
	redirect := func(to string) string { return base + "/redirect?to=" + to }
	tests := []struct {
		name    string
		url     string
		refused Class
		wantErr string
	}{
		{name: "to loopback by address", url: redirect("http://127.0.0.1:" + srv.port() + "/file?n=1"), refused: ClassLoopback},
		{name: "to a name that resolves to loopback", url: redirect("http://rebind.test:" + srv.port() + "/file?n=1"), refused: ClassLoopback},
		{name: "to the metadata address", url: redirect("http://169.254.169.254/computeMetadata/v1/"), refused: ClassMetadata},
		{name: "to the metadata host name", url: redirect("http://metadata.google.internal/computeMetadata/v1/"), refused: ClassMetadata},
		{name: "to a private address", url: redirect("http://10.1.1.1/x"), refused: ClassPrivate},
		{name: "to another scheme", url: redirect("ftp://files.test/x"), wantErr: "unsupported URL scheme"},
		{name: "too many hops", url: base + "/hops?n=6", wantErr: "stopped after 5 redirects"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := loopbackFetcher(t, cfg)
			_, err := f.Get(context.Background(), tc.url)
			if err == nil {
				t.Fatal("redirect followed; want it refused")
			}
			if tc.refused != "" {
				var re *RefusedError
				if !errors.As(err, &re) || re.Class != tc.refused {
					t.Fatalf("error %v, want a %s refusal", err, tc.refused)
				}
				return
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestFetchBadInputs(t *testing.T) {
	srv := newFileServer(t, false)
	tests := []struct {
		name    string
		url     string
		cfg     func(*Config)
		wantErr string
		is      error
	}{
		{name: "plain http refused by default", url: srv.URL + "/file?n=1", cfg: func(c *Config) { c.AllowHTTP = false }, wantErr: "use https://"},
		{name: "file scheme", url: "file:///etc/passwd", is: ErrScheme},
		{name: "ftp scheme", url: "ftp://example.com/x", is: ErrScheme},
		{name: "no host", url: "https:///x", wantErr: "has no host"},
		{name: "not found", url: srv.URL + "/status?code=404&X-Goog-Signature=sekrit", wantErr: "404 Not Found"},
		{name: "server error", url: srv.URL + "/status?code=500", wantErr: "500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := loopbackFetcher(t, tc.cfg)
			_, err := f.Get(context.Background(), tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("error %v, want %q / %v", err, tc.wantErr, tc.is)
			}
			if strings.Contains(err.Error(), "sekrit") {
				t.Errorf("error leaks the URL's query: %v", err)
			}
		})
	}
}

func TestDownload(t *testing.T) {
	srv := newFileServer(t, false)
	f := loopbackFetcher(t, nil)
	dst := filepath.Join(t.TempDir(), "input", "a.png")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := f.Download(context.Background(), srv.URL+"/chunked?n=70000", dst)
	if err != nil || n != 70000 {
		t.Fatalf("Download = %d, %v", n, err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, payload(70000)) {
		t.Fatalf("file has %d bytes (%v), want the payload", len(got), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 1 {
		t.Errorf("temp files left beside the download: %v", entries)
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"https://u:p@h.test/a/b.png?X-Goog-Signature=abc#frag": "https://h.test/a/b.png",
		"gs://b/o":             "gs://b/o",
		"https://h.test/x y":   "https://h.test/x%20y",
		"http://[::1]:80/?q=1": "http://[::1]:80/",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
