package endpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/endpoint/endpointtest"
)

// seedInput has an integer beyond 2^53, which a float64 round trip would
// change: ComfyUI seeds go up to 2^64-1.
const seedInput = `{"version_id": "sd15", "workflow": {"3": {"class_type": "KSampler", "inputs": {"seed": 18446744073709551615}}}}`

func TestCallFollowsJob(t *testing.T) {
	p1 := `{"stage":"realize","version_id":"sd15"}`
	// Keys in sorted order: status answers read through the SDK are
	// re-encoded from a map.
	p2 := `{"max":20,"node":"3","percent":25,"stage":"execute","value":5}`
	out := `{"version_id":"sd15","outputs":[]}`
	tests := []struct {
		name     string
		sync     bool
		behavior endpointtest.Behavior
		// routes is how many requests each route should get.
		routes  map[endpointtest.Route]int
		updates []string
	}{
		{
			name:     "async queued then running",
			behavior: endpointtest.Behavior{Queued: 1, Running: 3, Progress: []json.RawMessage{raw(p1), raw(p2), raw(p2)}, Output: raw(out)},
			routes:   map[endpointtest.Route]int{endpointtest.RouteRun: 1, endpointtest.RouteStatus: 5, endpointtest.RouteRunSync: 0},
			updates:  []string{"IN_QUEUE", "IN_PROGRESS " + p1, "IN_PROGRESS " + p2, "COMPLETED"},
		},
		{
			name:     "async immediate",
			behavior: endpointtest.Behavior{Output: raw(out)},
			routes:   map[endpointtest.Route]int{endpointtest.RouteRun: 1, endpointtest.RouteStatus: 1},
			updates:  []string{"IN_QUEUE", "COMPLETED"},
		},
		{
			name:     "sync answered within the wait window",
			sync:     true,
			behavior: endpointtest.Behavior{Output: raw(out)},
			routes:   map[endpointtest.Route]int{endpointtest.RouteRunSync: 1, endpointtest.RouteStatus: 0, endpointtest.RouteRun: 0},
			updates:  []string{"COMPLETED"},
		},
		{
			name:     "sync falls back to polling status",
			sync:     true,
			behavior: endpointtest.Behavior{Queued: 1, Running: 2, Progress: []json.RawMessage{raw(p2)}, Output: raw(out)},
			routes:   map[endpointtest.Route]int{endpointtest.RouteRunSync: 1, endpointtest.RouteStatus: 3, endpointtest.RouteRun: 0},
			updates:  []string{"IN_QUEUE", "IN_PROGRESS " + p2, "COMPLETED"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newPair(t, tt.behavior)
			rec := &recorder{}
			res, err := c.Call(context.Background(), raw(seedInput), CallOptions{Sync: tt.sync, Progress: rec.add})
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if res.Status != StatusCompleted || res.ID == "" {
				t.Errorf("result = %+v", res)
			}
			jsonEqual(t, res.Output, []byte(out))
			if got := rec.list(); !slices.Equal(got, tt.updates) {
				t.Errorf("updates:\n got %q\nwant %q", got, tt.updates)
			}
			for route, n := range tt.routes {
				if got := srv.Count(route); got != n {
					t.Errorf("%s requests = %d, want %d", route, got, n)
				}
			}
			for _, r := range srv.Requests() {
				if r.Authorization != "Bearer "+testKey {
					t.Errorf("%s sent Authorization %q, want the Bearer key", r.Route, r.Authorization)
				}
			}
			jobs := srv.Jobs()
			if len(jobs) != 1 {
				t.Fatalf("%d jobs submitted, want 1", len(jobs))
			}
			if !strings.Contains(string(jobs[0].Input), "18446744073709551615") {
				t.Errorf("the seed lost digits on the way: %s", jobs[0].Input)
			}
			jsonEqual(t, jobs[0].Input, []byte(seedInput))
			if tt.sync {
				var compact bytes.Buffer
				json.Compact(&compact, []byte(seedInput))
				if string(jobs[0].Input) != compact.String() {
					t.Errorf("/runsync did not send the input as given (compacted): %s", jobs[0].Input)
				}
				if w := jobs[0].Query.Get("wait"); w != "90000" {
					t.Errorf("wait = %q, want RunPod's default 90000", w)
				}
			}
		})
	}
}

func TestCallJobErrors(t *testing.T) {
	tests := []struct {
		name     string
		behavior endpointtest.Behavior
		status   string
		message  string
		typ      string
	}{
		{
			name:     "failed with details",
			behavior: endpointtest.Behavior{Running: 1, Error: "node 3 (KSampler): ckpt_name 'x.safetensors' not in []", Output: raw(`{"error_type":"comfy_validation","node_id":"3"}`)},
			status:   StatusFailed, message: "node 3 (KSampler): ckpt_name 'x.safetensors' not in []", typ: "comfy_validation",
		},
		{
			name:     "handler exception as JSON in a string",
			behavior: endpointtest.Behavior{Error: `{"error_type": "<class 'ValueError'>", "error_message": "bad seed", "error_traceback": "..."}`},
			status:   StatusFailed, message: "bad seed", typ: "<class 'ValueError'>",
		},
		{
			name:     "error that is not a string",
			behavior: endpointtest.Behavior{ErrorJSON: raw(`{"code":7,"msg":"boom"}`)},
			status:   StatusFailed, message: "boom",
		},
		{
			name:     "timed out on the endpoint",
			behavior: endpointtest.Behavior{Running: 1, Final: StatusTimedOut},
			status:   StatusTimedOut, message: "",
		},
	}
	for _, tt := range tests {
		for _, sync := range []bool{false, true} {
			t.Run(tt.name+map[bool]string{false: " async", true: " sync"}[sync], func(t *testing.T) {
				_, c := newPair(t, tt.behavior)
				res, err := c.Call(context.Background(), raw(`{"x":1}`), CallOptions{Sync: sync})
				var je *JobError
				if !errors.As(err, &je) {
					t.Fatalf("err = %v, want a *JobError", err)
				}
				if !errors.Is(err, ErrJobFailed) {
					t.Error("errors.Is(err, ErrJobFailed) is false")
				}
				if res == nil || res.Status != tt.status || je.Status != tt.status {
					t.Fatalf("result %+v, error status %q, want %s", res, je.Status, tt.status)
				}
				if !strings.Contains(je.Message, tt.message) || !strings.Contains(err.Error(), tt.message) {
					t.Errorf("message %q / error %q, want it to contain %q", je.Message, err, tt.message)
				}
				if je.Type != tt.typ {
					t.Errorf("type = %q, want %q", je.Type, tt.typ)
				}
				if !strings.Contains(err.Error(), je.JobID) {
					t.Errorf("error %q does not name the job", err)
				}
			})
		}
	}
}

func TestCallCancelSendsCancel(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(map[bool]string{false: "async", true: "sync"}[sync], func(t *testing.T) {
			srv, c := newPair(t, endpointtest.Behavior{Forever: true, Progress: []json.RawMessage{raw(`{"stage":"execute"}`)}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			progress := func(u Update) {
				if u.Status == StatusInProgress {
					cancel()
				}
			}
			res, err := c.Call(ctx, raw(`{"x":1}`), CallOptions{Sync: sync, Progress: progress})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if res == nil || res.ID == "" {
				t.Fatalf("no result for the cancelled job: %+v", res)
			}
			if !strings.Contains(err.Error(), "cancel sent") {
				t.Errorf("error %q does not say the job was cancelled", err)
			}
			cancels := srv.Requests(endpointtest.RouteCancel)
			if len(cancels) != 1 || cancels[0].JobID != res.ID {
				t.Fatalf("cancel requests = %+v, want one for %s", cancels, res.ID)
			}
			if j, _ := srv.Job(res.ID); !j.Cancelled {
				t.Error("the fake's job is not cancelled")
			}
		})
	}
}

func TestCallTimeoutCancels(t *testing.T) {
	srv, c := newPair(t, endpointtest.Behavior{Forever: true})
	start := time.Now()
	res, err := c.Call(context.Background(), raw(`{"x":1}`), CallOptions{Timeout: 150 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Call took %s after a 150ms timeout", el)
	}
	if !strings.Contains(err.Error(), "150ms") || res == nil {
		t.Errorf("error %q does not give the timeout, or no result (%v)", err, res)
	}
	if n := srv.Count(endpointtest.RouteCancel); n != 1 {
		t.Errorf("cancel requests = %d, want 1", n)
	}
}

// A /run still in flight when the caller gives up must not leave the job
// running: its id arrives later and the job is cancelled then.
func TestCallCancelledDuringRun(t *testing.T) {
	srv, c := newPair(t, endpointtest.Behavior{Forever: true})
	srv.Delay(endpointtest.RouteRun, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, raw(`{"x":1}`), CallOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 250*time.Millisecond {
		t.Errorf("Call returned after %s: it waited for the SDK instead of the context", el)
	}
	c.Close()
	jobs := srv.Jobs()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	if !jobs[0].Cancelled {
		t.Errorf("the job submitted by the abandoned /run was not cancelled; requests: %+v", srv.Requests())
	}
}

func TestCallAPIErrors(t *testing.T) {
	tests := []struct {
		name   string
		sync   bool
		key    string
		wrong  string // endpoint id
		is     error
		phrase string
	}{
		{name: "wrong key async", key: "nope", is: ErrUnauthorized, phrase: "RUNPOD_API_KEY"},
		{name: "wrong key sync", sync: true, key: "nope", is: ErrUnauthorized, phrase: "RUNPOD_API_KEY"},
		{name: "unknown endpoint async", key: testKey, wrong: "other", is: ErrNotFound, phrase: `"other"`},
		{name: "unknown endpoint sync", sync: true, key: testKey, wrong: "other", is: ErrNotFound, phrase: `"other"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := endpointtest.New(endpointtest.Config{APIKey: testKey})
			ep := srv.EndpointID()
			if tt.wrong != "" {
				ep = tt.wrong
			}
			c := newClientFor(t, srv, tt.key, ep)
			res, err := c.Call(context.Background(), raw(`{"x":1}`), CallOptions{Sync: tt.sync})
			if !errors.Is(err, tt.is) || res != nil {
				t.Fatalf("err = %v (result %v), want %v", err, res, tt.is)
			}
			if !strings.Contains(err.Error(), tt.phrase) {
				t.Errorf("error %q does not say %s", err, tt.phrase)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the key", err)
			}
			if len(srv.Jobs()) != 0 {
				t.Error("a job was created")
			}
		})
	}
}

func TestCallPollFailures(t *testing.T) {
	t.Run("transient failures are retried", func(t *testing.T) {
		srv, c := newPair(t, endpointtest.Behavior{Running: 1, Output: raw(`{"ok":true}`)})
		srv.Fail(endpointtest.RouteStatus, 503, 2)
		srv.Fail(endpointtest.RouteStatus, 429, 1)
		res, err := c.Call(context.Background(), raw(`{"x":1}`), CallOptions{})
		if err != nil || res.Status != StatusCompleted {
			t.Fatalf("Call = %+v, %v", res, err)
		}
		if n := srv.Count(endpointtest.RouteStatus); n != 5 {
			t.Errorf("status requests = %d, want 5 (3 failed + 2)", n)
		}
	})
	t.Run("persistent failures give up", func(t *testing.T) {
		srv, c := newPair(t, endpointtest.Behavior{Forever: true})
		srv.Fail(endpointtest.RouteStatus, 502, 100)
		_, err := c.Call(context.Background(), raw(`{"x":1}`), CallOptions{})
		if err == nil || !strings.Contains(err.Error(), "lost track") || !strings.Contains(err.Error(), "502") {
			t.Fatalf("err = %v", err)
		}
		if n := srv.Count(endpointtest.RouteStatus); n != 5 {
			t.Errorf("status requests = %d, want MaxPollFailures (5)", n)
		}
	})
	t.Run("a vanished job is not retried", func(t *testing.T) {
		srv, c := newPair(t, endpointtest.Behavior{Forever: true})
		srv.Fail(endpointtest.RouteStatus, 404, 1)
		_, err := c.Call(context.Background(), raw(`{"x":1}`), CallOptions{})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("err = %v, want ErrNotFound saying the result expired", err)
		}
		if n := srv.Count(endpointtest.RouteStatus); n != 1 {
			t.Errorf("status requests = %d, want 1", n)
		}
	})
}

func TestCallStream(t *testing.T) {
	chunks := []json.RawMessage{raw(`{"i":0}`), raw(`{"i":1}`), raw(`{"i":2}`), raw(`{"i":3}`), raw(`{"i":4}`)}
	srv, c := newPair(t, endpointtest.Behavior{Running: 2, Stream: chunks, Output: raw(`[0,1,2,3,4]`)})
	var got []string
	res, err := c.Call(context.Background(), raw(`{"x":1}`), CallOptions{Stream: func(ch json.RawMessage) { got = append(got, string(ch)) }})
	if err != nil || res.Status != StatusCompleted {
		t.Fatalf("Call = %+v, %v", res, err)
	}
	want := []string{`{"i":0}`, `{"i":1}`, `{"i":2}`, `{"i":3}`, `{"i":4}`}
	if !slices.Equal(got, want) {
		t.Errorf("chunks = %q, want %q", got, want)
	}
	if srv.Count(endpointtest.RouteStream) < 2 {
		t.Errorf("stream read %d times, want it read while running and after", srv.Count(endpointtest.RouteStream))
	}
}

func TestCallRefusesBadInput(t *testing.T) {
	big := `{"image":"` + strings.Repeat("A", MaxRunPayload) + `"}`
	tests := []struct {
		name, input string
		sync        bool
		phrase      string
	}{
		{"not an object", `[1,2]`, false, "JSON object"},
		{"not JSON", `{"x":`, true, "JSON object"},
		{"over the /run limit", big, false, "--sync"},
		{"over the /runsync limit", `{"image":"` + strings.Repeat("A", MaxRunSyncPayload) + `"}`, true, "20 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newPair(t, endpointtest.Behavior{})
			_, err := c.Call(context.Background(), raw(tt.input), CallOptions{Sync: tt.sync})
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.phrase) {
				t.Fatalf("err = %v, want an InputError saying %q", err, tt.phrase)
			}
			if n := len(srv.Requests()); n != 0 {
				t.Errorf("%d requests sent for a refused input", n)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	_, c := newPair(t, endpointtest.Behavior{})
	if _, err := c.Call(context.Background(), raw(`{"x":1}`), CallOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.Jobs["completed"] != 1 || h.Workers["idle"] != 1 {
		t.Errorf("health = %+v", h)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{EndpointID: "abc"}},
		{"no endpoint", Config{APIKey: "k"}},
		{"endpoint with a slash", Config{APIKey: "k", EndpointID: "a/../b"}},
		{"base URL not http", Config{APIKey: "k", EndpointID: "abc", BaseURL: "ftp://x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New accepted it")
			} else if strings.Contains(err.Error(), "k\"") {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
}

func TestCallSyncWaitWindow(t *testing.T) {
	tests := []struct {
		name string
		opts CallOptions
		want string
	}{
		{"default", CallOptions{Sync: true}, "90000"},
		{"within the timeout", CallOptions{Sync: true, Timeout: 10 * time.Second}, "8000"},
		{"explicit", CallOptions{Sync: true, SyncWait: 3 * time.Second}, "3000"},
		{"at least a second", CallOptions{Sync: true, SyncWait: time.Millisecond}, "1000"},
		{"at most five minutes", CallOptions{Sync: true, SyncWait: time.Hour}, "300000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newPair(t, endpointtest.Behavior{})
			if _, err := c.Call(context.Background(), raw(`{}`), tt.opts); err != nil {
				t.Fatal(err)
			}
			if got := srv.Jobs()[0].Query.Get("wait"); got != tt.want {
				t.Errorf("wait = %s, want %s", got, tt.want)
			}
		})
	}
}

// A /runsync abandoned before it answered has no job id to cancel; the
// error must say so rather than claim the job was cancelled.
func TestCallSyncAbandoned(t *testing.T) {
	srv, c := newPair(t, endpointtest.Behavior{Forever: true})
	srv.Delay(endpointtest.RouteRunSync, 2*time.Second)
	start := time.Now()
	_, err := c.Call(context.Background(), raw(`{}`), CallOptions{Sync: true, Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "could not be cancelled") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Call returned after %s", el)
	}
	if n := srv.Count(endpointtest.RouteCancel); n != 0 {
		t.Errorf("%d cancel requests without a job id", n)
	}
}

// TestCallSendsRequestOptions: policy (lowPriority included) and s3Config
// reach the endpoint API on /run (the SDK, or a direct post for what the
// SDK cannot send) and on /runsync.
func TestCallSendsRequestOptions(t *testing.T) {
	s3 := &S3Config{AccessID: "a", AccessSecret: "s", BucketName: "b", EndpointURL: "https://s3.example"}
	for _, tc := range []struct {
		name string
		sync bool
		req  Request
		want string
	}{
		{"run via the SDK", false, Request{Policy: Policy{TTL: time.Hour}, S3Config: s3},
			`{"s3Config":{"accessId":"a","accessSecret":"s","bucketName":"b","endpointUrl":"https://s3.example"},"policy":{"ttl":3600000}}`},
		{"run with lowPriority", false, Request{Policy: Policy{LowPriority: true, ExecutionTimeout: time.Minute}, S3Config: s3},
			`{"s3Config":{"accessId":"a","accessSecret":"s","bucketName":"b","endpointUrl":"https://s3.example"},"policy":{"executionTimeout":60000,"lowPriority":true}}`},
		{"runsync", true, Request{Policy: Policy{LowPriority: true}, S3Config: s3},
			`{"s3Config":{"accessId":"a","accessSecret":"s","bucketName":"b","endpointUrl":"https://s3.example"},"policy":{"lowPriority":true}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := newPair(t, endpointtest.Behavior{Output: raw(`{}`)})
			tc.req.Input = raw(`{"x": 1}`)
			if _, err := c.CallRequest(context.Background(), &tc.req, CallOptions{Sync: tc.sync}); err != nil {
				t.Fatal(err)
			}
			route := endpointtest.RouteRun
			if tc.sync {
				route = endpointtest.RouteRunSync
			}
			reqs := srv.Requests(route)
			if len(reqs) != 1 {
				t.Fatalf("%d %s requests", len(reqs), route)
			}
			var body map[string]json.RawMessage
			json.Unmarshal(reqs[0].Body, &body)
			got, _ := json.Marshal(map[string]json.RawMessage{"policy": body["policy"], "s3Config": body["s3Config"]})
			jsonEqual(t, got, []byte(tc.want))
		})
	}
}
