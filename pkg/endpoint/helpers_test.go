package endpoint

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/syncbuf"
	"github.com/runpod-comfy/worker/pkg/endpoint/endpointtest"
)

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// testKey is distinctive so a leak into logs or errors is easy to find.
const testKey = "rpa_SECRETKEY0123456789"

// newPair starts a fake endpoint and a Client for it. At cleanup it closes
// both and fails the test if the API key appeared in the logs.
func newPair(t *testing.T, b endpointtest.Behavior) (*endpointtest.Server, *Client) {
	t.Helper()
	srv := endpointtest.New(endpointtest.Config{APIKey: testKey, Default: b})
	c := newClient(t, srv, testKey)
	return srv, c
}

func newClient(t *testing.T, srv *endpointtest.Server, key string) *Client {
	t.Helper()
	return newClientFor(t, srv, key, srv.EndpointID())
}

func newClientFor(t *testing.T, srv *endpointtest.Server, key, endpointID string) *Client {
	t.Helper()
	logs := &syncBuffer{}
	log := zerolog.New(zerolog.MultiLevelWriter(logs, zerolog.NewTestWriter(t))).Level(zerolog.DebugLevel)
	c, err := New(Config{APIKey: key, EndpointID: endpointID, BaseURL: srv.URL,
		PollInterval: 5 * time.Millisecond, RequestTimeout: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the server closes first, which ends
	// held requests, then Close waits for the SDK calls.
	t.Cleanup(func() {
		c.Close()
		if strings.Contains(logs.String(), key) {
			t.Errorf("the API key appears in the logs:\n%s", logs.String())
		}
	})
	t.Cleanup(srv.Close)
	return c
}

// recorder collects progress updates.
type recorder struct {
	mu      sync.Mutex
	updates []Update
}

func (r *recorder) add(u Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, u := range r.updates {
		s := u.Status
		if u.Progress != nil {
			s += " " + string(u.Progress)
		}
		out = append(out, s)
	}
	return out
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("JSON differs:\n got %s\nwant %s", gb, wb)
	}
}
