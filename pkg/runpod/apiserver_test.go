package runpod

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// apiHarness runs an APIServer on 127.0.0.1 until the test ends.
type apiHarness struct {
	base   string
	cancel context.CancelFunc
	done   chan error
}

func startAPI(t *testing.T, h Handler) *apiHarness {
	t.Helper()
	return startAPIWith(t, h, Config{Hostname: "h1"})
}

func startAPIWith(t *testing.T, h Handler, cfg Config) *apiHarness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t, "")
	tr := &http.Transport{}
	s := NewAPIServer(h, cfg, WithLogger(log), WithHTTPClient(&http.Client{Transport: tr}))
	ctx, cancel := context.WithCancel(context.Background())
	a := &apiHarness{base: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-a.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return")
		}
		tr.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
	})
	return a
}

// req sends a request and decodes the JSON answer.
func (a *apiHarness) req(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	r, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: answer %q is not a JSON object", method, path, b)
	}
	return resp.StatusCode, m
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

var testID = regexp.MustCompile(`^test-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// apiHandler blocks on {"wait": true} until release, reporting progress
// first; fails on {"fail": true}; else echoes.
func apiHandler(release <-chan struct{}) Handler {
	return func(ctx context.Context, j Job, p Progress) Result {
		var in struct{ Wait, Fail bool }
		_ = json.Unmarshal(j.Input, &in)
		switch {
		case in.Wait:
			p.Update(map[string]string{"stage": "waiting"})
			select {
			case <-release:
			case <-ctx.Done():
				return Result{Error: "cancelled: " + context.Cause(ctx).Error()}
			}
		case in.Fail:
			return Result{Error: "workflow failed", Output: map[string]string{"error_type": "comfy_execution"}}
		}
		return Result{Output: j.Input}
	}
}

func TestAPIServerRunAndStatus(t *testing.T) {
	release := make(chan struct{})
	a := startAPI(t, apiHandler(release))

	st, run := a.req(t, "POST", "/run", `{"input": {"wait": true}}`)
	if st != 200 || run["status"] != "IN_PROGRESS" || keys(run) != "id,status" || !testID.MatchString(run["id"].(string)) {
		t.Fatalf("/run: %d %v", st, run)
	}
	id := run["id"].(string)
	// While it runs, /status shows the last progress value as output.
	deadline := time.Now().Add(5 * time.Second)
	var status map[string]any
	for time.Now().Before(deadline) {
		_, status = a.req(t, "GET", "/status/"+id, "")
		if status["output"] != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status["status"] != "IN_PROGRESS" || status["output"].(map[string]any)["stage"] != "waiting" {
		t.Fatalf("running status %v", status)
	}
	// A second job queues behind the first.
	_, second := a.req(t, "POST", "/run", `{"input": {"n": 2}}`)
	if _, s2 := a.req(t, "POST", "/status/"+second["id"].(string), ""); s2["status"] != "IN_QUEUE" {
		t.Errorf("queued status %v", s2)
	}
	_, health := a.req(t, "GET", "/health", "")
	jobs := health["jobs"].(map[string]any)
	if jobs["inProgress"] != 1.0 || jobs["inQueue"] != 1.0 || health["workers"].(map[string]any)["running"] != 1.0 {
		t.Errorf("health while busy %v", health)
	}

	close(release)
	for _, jid := range []string{id, second["id"].(string)} {
		for {
			_, status = a.req(t, "POST", "/status/"+jid, "")
			if status["status"] != "IN_PROGRESS" && status["status"] != "IN_QUEUE" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s did not finish: %v", jid, status)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if status["status"] != "COMPLETED" || keys(status) != "id,output,status" {
			t.Errorf("final status %v", status)
		}
	}
	_, health = a.req(t, "GET", "/health", "")
	if health["jobs"].(map[string]any)["completed"] != 2.0 || health["workers"].(map[string]any)["idle"] != 1.0 {
		t.Errorf("health after %v", health)
	}
}

func TestAPIServerRunSyncShapes(t *testing.T) {
	a := startAPI(t, apiHandler(nil))
	for _, tc := range []struct {
		name, body string
		wantStatus int
		check      func(t *testing.T, m map[string]any)
	}{
		{"completed", `{"input": {"x": 1}}`, 200, func(t *testing.T, m map[string]any) {
			if m["status"] != "COMPLETED" || keys(m) != "id,output,status" || m["output"].(map[string]any)["x"] != 1.0 {
				t.Errorf("%v", m)
			}
		}},
		{"failed", `{"input": {"fail": true}}`, 200, func(t *testing.T, m map[string]any) {
			if m["status"] != "FAILED" || m["error"] != "workflow failed" || m["output"].(map[string]any)["error_type"] != "comfy_execution" {
				t.Errorf("%v", m)
			}
		}},
		{"input not an object", `{"input": [1]}`, 422, func(t *testing.T, m map[string]any) {
			if _, ok := m["detail"]; !ok {
				t.Errorf("%v", m)
			}
		}},
		{"no input", `{"webhook": "http://x"}`, 422, nil},
		{"not JSON", `{`, 422, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m := a.req(t, "POST", "/runsync", tc.body)
			if st != tc.wantStatus {
				t.Fatalf("status %d, want %d (%v)", st, tc.wantStatus, m)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
	st, m := a.req(t, "GET", "/status/nope", "")
	if st != 200 || m["status"] != "FAILED" || m["error"] != "Job ID not found" || m["id"] != "nope" {
		t.Errorf("unknown id: %d %v", st, m)
	}
	if st, _ := a.req(t, "GET", "/nothing", ""); st != 404 {
		t.Errorf("unknown route: %d", st)
	}
}

func TestAPIServerWebhook(t *testing.T) {
	got := make(chan map[string]any, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		got <- m
	}))
	defer hook.Close()
	a := startAPI(t, apiHandler(nil))
	_, m := a.req(t, "POST", "/runsync", `{"input": {"x": 2}, "webhook": "`+hook.URL+`"}`)
	select {
	case w := <-got:
		if w["id"] != m["id"] || w["status"] != "COMPLETED" || w["output"].(map[string]any)["x"] != 2.0 {
			t.Errorf("webhook body %v", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook call")
	}
}

func TestAPIServerShutdownCancelsRunningJob(t *testing.T) {
	a := startAPI(t, apiHandler(make(chan struct{})))
	_, run := a.req(t, "POST", "/run", `{"input": {"wait": true}}`)
	_, queued := a.req(t, "POST", "/run", `{"input": {}}`)
	if run["id"] == nil || queued["id"] == nil {
		t.Fatal(run, queued)
	}
	// A /runsync waiting behind them must get an answer too.
	sync := make(chan int, 1)
	go func() {
		resp, err := http.Post(a.base+"/runsync", "application/json", strings.NewReader(`{"input": {}}`))
		if err != nil {
			sync <- 0
			return
		}
		resp.Body.Close()
		sync <- resp.StatusCode
	}()
	time.Sleep(50 * time.Millisecond)
	a.cancel()
	select {
	case err := <-a.done:
		a.done <- err
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if code := <-sync; code != 200 && code != 503 {
		t.Errorf("/runsync during shutdown answered %d", code)
	}
}

// TestAPIServerStreamAndRealtime: /stream answers as the SDK does for a
// handler that is not a generator, and with RUNPOD_ENDPOINT_ID set the
// realtime route runs a job and answers with the raw job result.
func TestAPIServerStreamAndRealtime(t *testing.T) {
	a := startAPIWith(t, apiHandler(nil), Config{Hostname: "h1", EndpointID: "ep123"})
	_, run := a.req(t, "POST", "/runsync", `{"input": {"x": 1}}`)
	id, _ := run["id"].(string)
	for _, tc := range []struct {
		path, want string
	}{
		{"/stream/" + id, `{"error":"Stream not supported, handler must be a generator.","id":"` + id + `","status":"FAILED"}`},
		{"/stream/nope", `{"error":"Job ID not found","id":"nope","status":"FAILED"}`},
	} {
		code, m := a.req(t, "POST", tc.path, "")
		got, _ := json.Marshal(m)
		if code != 200 || string(got) != tc.want {
			t.Errorf("POST %s = %d %s, want 200 %s", tc.path, code, got, tc.want)
		}
	}
	for _, tc := range []struct {
		body, want string
	}{
		{`{"id": "r1", "input": {"x": 2}}`, `{"output":{"x":2}}`},
		{`{"input": {"fail": true}}`, `{"error":"workflow failed","output":{"error_type":"comfy_execution"}}`},
		{`{"id": "r3"}`, `{"error":"Job has no input parameter."}`},
	} {
		code, m := a.req(t, "POST", "/ep123/realtime", tc.body)
		got, _ := json.Marshal(m)
		if code != 200 || string(got) != tc.want {
			t.Errorf("realtime %s = %d %s, want 200 %s", tc.body, code, got, tc.want)
		}
	}
	if code, _ := a.req(t, "POST", "/other/realtime", `{"input": {}}`); code != 404 {
		t.Errorf("realtime under another endpoint id: %d, want 404", code)
	}
}
