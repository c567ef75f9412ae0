package output

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"
)

// fault is what the fake does to one request instead of serving it.
type fault int

const (
	pass fault = iota
	fail503
	fail403
	dropConn
	uniform400 // the reply GCS gives an ACL call on a uniform-access bucket
)

// fakeGCS is fake-gcs-server behind a real HTTP listener on 127.0.0.1,
// with a hook that can fail requests before the fake sees them (so a
// failed chunk is never half-applied, as with a real server's 5xx).
type fakeGCS struct {
	srv    *fakestorage.Server
	ts     *httptest.Server
	client *storage.Client

	mu     sync.Mutex
	hook   func(r *http.Request) fault
	counts map[string]int // requests seen by kind: upload, acl, delete, other
}

func newFakeGCS(t testing.TB, buckets ...string) *fakeGCS {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	f := &fakeGCS{srv: srv, counts: map[string]int{}}
	f.ts = httptest.NewServer(f.wrap(srv.HTTPHandler()))
	tr := &http.Transport{}
	f.client, err = storage.NewClient(context.Background(),
		option.WithEndpoint(f.ts.URL+"/storage/v1/"), option.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.client.Close()
		tr.CloseIdleConnections()
		f.ts.Close()
		srv.Stop()
	})
	return f
}

func requestKind(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/upload/"):
		return "upload"
	case strings.Contains(r.URL.Path, "/acl"):
		return "acl"
	case r.Method == http.MethodDelete:
		return "delete"
	}
	return "other"
}

func (f *fakeGCS) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.counts[requestKind(r)]++
		hook := f.hook
		f.mu.Unlock()
		flt := pass
		if hook != nil {
			flt = hook(r)
		}
		switch flt {
		case fail503, fail403:
			// Read the body as a server would before answering, so the
			// client sees the status rather than a broken pipe.
			_, _ = io.Copy(io.Discard, r.Body)
			code := map[fault]int{fail503: 503, fail403: 403}[flt]
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = io.WriteString(w, `{"error":{"code":`+strconv.Itoa(code)+`,"message":"injected"}}`)
		case uniform400:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":{"code":400,"message":"Cannot use ACL API to update object policy when uniform bucket-level access is enabled. Read more at https://cloud.google.com/storage/docs/uniform-bucket-level-access"}}`)
		case dropConn:
			hj, ok := w.(http.Hijacker)
			if !ok {
				panic("no hijacker")
			}
			c, _, err := hj.Hijack()
			if err == nil {
				c.Close()
			}
		default:
			h.ServeHTTP(w, r)
		}
	})
}

func (f *fakeGCS) setHook(h func(r *http.Request) fault) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *fakeGCS) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[kind]
}

// objects lists every object in a bucket, by name.
func (f *fakeGCS) objects(t testing.TB, bucket string) map[string]fakestorage.Object {
	t.Helper()
	objs, _, err := f.srv.ListObjectsWithOptions(bucket, fakestorage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]fakestorage.Object{}
	for _, o := range objs {
		full, err := f.srv.GetObject(bucket, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[o.Name] = full
	}
	return out
}
