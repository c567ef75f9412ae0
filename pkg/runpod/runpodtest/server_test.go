package runpodtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends one request and returns status and body; err is a transport error.
func call(hc *http.Client, method, url, key, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, "", err
	}
	if key != "" {
		req.Header.Set("Authorization", key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func mustCall(t *testing.T, method, url, key, body string) (int, string) {
	t.Helper()
	st, b, err := call(http.DefaultClient, method, url, key, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return st, b
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// urls substitutes the placeholders as a worker would (w1, job j).
func urls(s *Server, job string) (take, done, ping, stop string) {
	env := s.Env()
	r := strings.NewReplacer("$RUNPOD_POD_ID", "w1", "$ID", "w1")
	take = r.Replace(env["RUNPOD_WEBHOOK_GET_JOB"])
	ping = r.Replace(env["RUNPOD_WEBHOOK_PING"])
	done = strings.ReplaceAll(strings.ReplaceAll(env["RUNPOD_WEBHOOK_POST_OUTPUT"], "$RUNPOD_POD_ID", "w1"), "$ID", job)
	stop = strings.Replace(take, "/job-take/", "/job-stop/", 1)
	return
}

func TestEnvTemplates(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string // suffix of the take template
	}{
		{"default query", Options{}, "/v2/ep1/job-take/$ID?gpu=TEST"},
		{"custom", Options{Endpoint: "abc", Query: "gpu=H100"}, "/v2/abc/job-take/$ID?gpu=H100"},
		{"no query", Options{NoQuery: true}, "/v2/ep1/job-take/$ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.opts)
			defer s.Close()
			env := s.Env()
			if got := env["RUNPOD_WEBHOOK_GET_JOB"]; got != s.URL()+tc.want {
				t.Errorf("GET_JOB = %q, want %q", got, s.URL()+tc.want)
			}
			if !strings.Contains(env["RUNPOD_WEBHOOK_POST_OUTPUT"], "/job-done/$RUNPOD_POD_ID/$ID") ||
				!strings.Contains(env["RUNPOD_WEBHOOK_PING"], "/ping/$RUNPOD_POD_ID") {
				t.Errorf("templates lack placeholders: %v", env)
			}
			if env["RUNPOD_AI_API_KEY"] != s.APIKey() || env["RUNPOD_POD_ID"] != "w1" {
				t.Errorf("env = %v", env)
			}
		})
	}
}

func TestAuthIsRawKey(t *testing.T) {
	s := New(Options{LongPoll: 10 * time.Millisecond})
	defer s.Close()
	take, _, _, _ := urls(s, "")
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"wrong", http.StatusUnauthorized},
		{"Bearer " + s.APIKey(), http.StatusUnauthorized},
		{s.APIKey(), http.StatusNoContent},
	} {
		if st, _ := mustCall(t, "GET", take+"&job_in_progress=0", tc.key, ""); st != tc.want {
			t.Errorf("key %q: status %d, want %d", tc.key, st, tc.want)
		}
	}
	if n := s.AuthFailures(); n != 3 {
		t.Errorf("AuthFailures = %d, want 3", n)
	}
}

func TestEmptyTakeIsALongPoll(t *testing.T) {
	for _, status := range []int{http.StatusNoContent, http.StatusBadRequest} {
		s := New(Options{LongPoll: 150 * time.Millisecond, EmptyStatus: status})
		take, _, _, _ := urls(s, "")
		start := time.Now()
		st, _ := mustCall(t, "GET", take, s.APIKey(), "")
		if el := time.Since(start); el < 150*time.Millisecond {
			t.Errorf("empty take answered after %s, want a held poll", el)
		}
		if st != status {
			t.Errorf("status %d, want %d", st, status)
		}
		s.Close()
	}
}

func TestJobArrivingDuringPollIsHandedOutAtOnce(t *testing.T) {
	s := New(Options{LongPoll: 5 * time.Second})
	defer s.Close()
	take, _, _, _ := urls(s, "")
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.AddJobs(Job{ID: "j1", Input: map[string]int{"n": 1}})
	}()
	start := time.Now()
	st, body := mustCall(t, "GET", take+"&job_in_progress=0", s.APIKey(), "")
	if st != 200 || time.Since(start) > 2*time.Second {
		t.Fatalf("status %d after %s", st, time.Since(start))
	}
	if body != `{"id":"j1","input":{"n":1}}`+"\n" && body != `{"id":"j1","input":{"n":1}}` {
		t.Errorf("body %q", body)
	}
	if s.State("j1") != StateInProgress {
		t.Errorf("state %q", s.State("j1"))
	}
	reqs := s.Takes()
	if len(reqs) != 1 || reqs[0].Query.Get("job_in_progress") != "0" || reqs[0].WorkerID != "w1" || reqs[0].Query.Get("gpu") != "TEST" {
		t.Errorf("recorded take %+v", reqs)
	}
}

func TestTakeShapes(t *testing.T) {
	s := New(Options{LongPoll: 10 * time.Millisecond})
	defer s.Close()
	take, _, _, _ := urls(s, "")
	batch := strings.Replace(take, "/job-take/", "/job-take-batch/", 1)
	s.AddJobs(Job{ID: "a", Input: 1})
	s.AddList(Job{ID: "b", Input: 2}, Job{ID: "c", Input: 3})
	s.AddJobs(Job{ID: "d", Input: 4}, Job{ID: "e", Input: 5}, Job{ID: "f", Input: 6})
	s.AddRaw(200, `{"id": "g"}`)

	steps := []struct {
		url, want string
	}{
		{take, `{"id":"a","input":1}`},
		{take, `[{"id":"b","input":2},{"id":"c","input":3}]`},
		{batch + "&batch_size=2&job_in_progress=1", `[{"id":"d","input":4},{"id":"e","input":5}]`},
		{batch + "&batch_size=5&job_in_progress=0", `[{"id":"f","input":6}]`},
		{take, `{"id": "g"}`},
	}
	for i, st := range steps {
		code, body := mustCall(t, "GET", st.url, s.APIKey(), "")
		if code != 200 || strings.TrimSpace(body) != st.want {
			t.Errorf("step %d: %d %s, want %s", i, code, body, st.want)
		}
	}
	if code, _ := mustCall(t, "GET", take, s.APIKey(), ""); code != http.StatusNoContent {
		t.Errorf("drained queue answered %d", code)
	}
}

func TestPostsAreRecordedAndDecoded(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.AddJobs(Job{ID: "j1", Input: 1}, Job{ID: "j2", Input: 2})
	_, done1, _, _ := urls(s, "j1")
	_, done2, _, _ := urls(s, "j2")
	ctx := waitCtx(t)

	mustCall(t, "POST", done1+"&isStream=false", s.APIKey(), `{"status": "IN_PROGRESS", "output": {"step": 1}}`)
	mustCall(t, "POST", done1+"&isStream=false", s.APIKey(), `{"output": {"ok": true}, "stopPod": true}`)
	mustCall(t, "POST", done2+"&isStream=false", s.APIKey(), `{"output": {"error_type": "input"}, "error": "bad"}`)
	if st, _ := mustCall(t, "POST", done2, s.APIKey(), `not json`); st != http.StatusBadRequest {
		t.Errorf("bad body answered %d", st)
	}

	p, err := s.WaitResult(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Output) != `{"ok": true}` || !p.StopPod || p.Error != nil || p.Query.Get("isStream") != "false" {
		t.Errorf("j1 result %+v", p)
	}
	if got := strings.Join(p.Keys, ","); got != "output,stopPod" {
		t.Errorf("keys %s", got)
	}
	pr, err := s.WaitProgress(ctx, "j1", 1)
	if err != nil || len(pr) != 1 || string(pr[0].Output) != `{"step": 1}` {
		t.Errorf("progress %+v %v", pr, err)
	}
	r2 := s.Results("j2")
	if len(r2) != 1 || r2[0].ErrorString() != "bad" {
		t.Errorf("j2 results %+v", r2)
	}
	if s.State("j1") != StateCompleted || s.State("j2") != StateFailed {
		t.Errorf("states %q %q", s.State("j1"), s.State("j2"))
	}
	if n := len(s.Posts("")); n != 3 {
		t.Errorf("accepted posts %d, want 3", n)
	}
}

func TestFaults(t *testing.T) {
	s := New(Options{LongPoll: 10 * time.Millisecond})
	defer s.Close()
	_, done, ping, _ := urls(s, "j1")
	// A fresh connection per request, so a dropped one is seen as an error
	// rather than retried by the transport.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	key := s.APIKey()

	s.Inject(RouteDone, Fault{Status: 503}, Fault{Drop: true}, Fault{Delay: 300 * time.Millisecond})
	if st, _, err := call(hc, "POST", done, key, `{"output": 1}`); err != nil || st != 503 {
		t.Errorf("fault 1: %d %v", st, err)
	}
	if _, _, err := call(hc, "POST", done, key, `{"output": 2}`); err == nil {
		t.Errorf("fault 2: dropped connection gave no error")
	}
	short := &http.Client{Transport: hc.Transport, Timeout: 50 * time.Millisecond}
	if _, _, err := call(short, "POST", done, key, `{"output": 3}`); err == nil {
		t.Errorf("fault 3: slow answer did not time out")
	}
	if st, _, err := call(hc, "POST", done, key, `{"output": 4}`); err != nil || st != 200 {
		t.Errorf("after faults: %d %v", st, err)
	}
	time.Sleep(350 * time.Millisecond) // let the delayed handler notice its client left
	rs := s.Results("j1")
	if len(rs) != 1 || string(rs[0].Output) != "4" {
		t.Errorf("accepted results %+v, want only the last", rs)
	}
	reqs := s.Requests(RouteDone)
	var statuses []int
	for _, r := range reqs {
		statuses = append(statuses, r.Status)
	}
	if len(reqs) != 4 || statuses[0] != 503 || statuses[1] != 0 || statuses[3] != 200 {
		t.Errorf("recorded statuses %v", statuses)
	}

	s.Inject(RoutePing, Fault{Delay: 100 * time.Millisecond})
	start := time.Now()
	if st, _, err := call(hc, "GET", ping, key, ""); err != nil || st != 200 || time.Since(start) < 100*time.Millisecond {
		t.Errorf("slow ping: %d %v after %s", st, err, time.Since(start))
	}
}

func TestPingsAndStopChannel(t *testing.T) {
	s := New(Options{LongPoll: 100 * time.Millisecond})
	defer s.Close()
	_, _, ping, stop := urls(s, "")
	ctx := waitCtx(t)
	mustCall(t, "GET", ping+"&runpod_version=1.12.0", s.APIKey(), "")
	mustCall(t, "GET", ping+"&job_id=a%2Cb&runpod_version=1.12.0", s.APIKey(), "")
	pings, err := s.WaitPings(ctx, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pings[0].HasJobIDsParam || pings[0].RunpodVersion != "1.12.0" || pings[0].WorkerID != "w1" {
		t.Errorf("ping 0 %+v", pings[0])
	}
	if strings.Join(pings[1].JobIDs, "|") != "a|b" {
		t.Errorf("ping 1 job ids %q", pings[1].JobIDs)
	}

	if st, _ := mustCall(t, "GET", stop, s.APIKey(), ""); st != http.StatusNoContent {
		t.Errorf("empty stop poll answered %d", st)
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		s.StopJobs("x", "y")
	}()
	st, body := mustCall(t, "GET", stop, s.APIKey(), "")
	var ans struct {
		JobsToStop []string `json:"jobsToStop"`
	}
	if st != 200 || json.Unmarshal([]byte(body), &ans) != nil || strings.Join(ans.JobsToStop, ",") != "x,y" {
		t.Errorf("stop poll: %d %s", st, body)
	}
	if s.State("x") != StateCancelled {
		t.Errorf("state %q", s.State("x"))
	}
}

func TestRoutingErrors(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v2/other/job-take/w1", 404},
		{"GET", "/v2/ep1/nope/w1", 404},
		{"GET", "/v2/ep1/job-done/w1", 404},
		{"GET", "/v2/ep1/job-done/w1/j1", 405},
		{"POST", "/v2/ep1/ping/w1", 405},
	} {
		if st, _ := mustCall(t, tc.method, s.URL()+tc.path, s.APIKey(), ""); st != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, st, tc.want)
		}
	}
}
