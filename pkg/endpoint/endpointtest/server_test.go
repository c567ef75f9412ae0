package endpointtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func call(t *testing.T, method, url, auth, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestAuthorization(t *testing.T) {
	s := New(Config{APIKey: "k1"})
	defer s.Close()
	tests := []struct {
		auth string
		code int
	}{
		{"Bearer k1", 200},
		{"bearer k1", 200},
		{"k1", 200},
		{"Bearer k2", 401},
		{"Basic k1", 401},
		{"", 401},
	}
	for _, tt := range tests {
		code, _ := call(t, "GET", s.URL+"/ep-test/health", tt.auth, "")
		if code != tt.code {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, code, tt.code)
		}
	}
	if code, _ := call(t, "GET", s.URL+"/other/health", "k1", ""); code != 404 {
		t.Errorf("unknown endpoint: %d, want 404", code)
	}
}

func TestJobLifecycle(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	s.Next(Behavior{Queued: 1, Running: 1, Progress: []json.RawMessage{json.RawMessage(`{"p":1}`)}, Output: json.RawMessage(`{"done":true}`)})
	code, run := call(t, "POST", s.URL+"/ep-test/run", "test-key", `{"input":{"a":1}}`)
	if code != 200 || run["status"] != StatusInQueue {
		t.Fatalf("/run: %d %v", code, run)
	}
	id := run["id"].(string)
	want := []string{StatusInQueue, StatusInProgress, StatusCompleted, StatusCompleted}
	for i, w := range want {
		method := []string{"GET", "POST"}[i%2]
		_, st := call(t, method, s.URL+"/ep-test/status/"+id, "test-key", "")
		if st["status"] != w {
			t.Fatalf("poll %d: %v, want %s", i, st, w)
		}
		if w == StatusInProgress && st["output"].(map[string]any)["p"] != 1.0 {
			t.Errorf("progress output = %v", st["output"])
		}
	}
	// A finished job stays finished when cancelled.
	if _, c := call(t, "POST", s.URL+"/ep-test/cancel/"+id, "test-key", ""); c["status"] != StatusCompleted {
		t.Errorf("cancel of a completed job: %v", c)
	}
	if code, _ := call(t, "GET", s.URL+"/ep-test/status/nope", "test-key", ""); code != 404 {
		t.Errorf("unknown job: %d", code)
	}
	if code, _ := call(t, "POST", s.URL+"/ep-test/run", "test-key", `{"input":[1]}`); code != 400 {
		t.Errorf("array input: %d, want 400", code)
	}
	if n := s.Count(RouteStatus); n != 5 {
		t.Errorf("recorded %d status requests, want 5", n)
	}
}

func TestRunSyncAndCancel(t *testing.T) {
	s := New(Config{Default: Behavior{Forever: true}})
	defer s.Close()
	_, st := call(t, "POST", s.URL+"/ep-test/runsync?wait=5000", "test-key", `{"input":{}}`)
	id, _ := st["id"].(string)
	if !strings.HasPrefix(id, "sync-") || st["status"] != StatusInProgress {
		t.Fatalf("/runsync: %v", st)
	}
	if _, c := call(t, "POST", s.URL+"/ep-test/cancel/"+id, "test-key", ""); c["status"] != StatusCancelled {
		t.Errorf("cancel: %v", c)
	}
	if _, st := call(t, "GET", s.URL+"/ep-test/status/"+id, "test-key", ""); st["status"] != StatusCancelled {
		t.Errorf("status after cancel: %v", st)
	}
	j, _ := s.Job(id)
	if !j.Cancelled || j.Query.Get("wait") != "5000" {
		t.Errorf("job = %+v", j)
	}
}

func TestFaults(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	s.Fail(RouteHealth, 503, 1)
	if code, _ := call(t, "GET", s.URL+"/ep-test/health", "", ""); code != 503 {
		t.Errorf("first: %d, want the injected 503", code)
	}
	if code, _ := call(t, "GET", s.URL+"/ep-test/health", "test-key", ""); code != 200 {
		t.Errorf("second: %d, want 200", code)
	}
}
