package runpod

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

func TestAppendQuery(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://h/p", "http://h/p?k=v"},
		{"http://h/p?", "http://h/p?k=v"},
		{"http://h/p?a=1", "http://h/p?a=1&k=v"},
		{"http://h/p?a=1&", "http://h/p?a=1&k=v"},
		{"http://h/p?a=1#frag", "http://h/p?a=1&k=v#frag"},
		{"", ""},
	} {
		if got := appendQuery(tc.in, "k=v"); got != tc.want {
			t.Errorf("appendQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEndpoints(t *testing.T) {
	const b = "https://api.runpod.ai/v2/ep"
	for _, tc := range []struct {
		name                                           string
		cfg                                            Config
		take0, take1, batch3, stop, done, ping0, ping2 string
	}{
		{
			name: "RunPod's templates",
			cfg: Config{
				JobTakeURL: b + "/job-take/$ID?gpu=NVIDIA+H100",
				JobDoneURL: b + "/job-done/$RUNPOD_POD_ID/$ID?gpu=NVIDIA+H100",
				PingURL:    b + "/ping/$RUNPOD_POD_ID?gpu=NVIDIA+H100",
			},
			take0:  b + "/job-take/w1?gpu=NVIDIA+H100&job_in_progress=0",
			take1:  b + "/job-take/w1?gpu=NVIDIA+H100&job_in_progress=1",
			batch3: b + "/job-take-batch/w1?gpu=NVIDIA+H100&batch_size=3&job_in_progress=1",
			stop:   b + "/job-stop/w1?gpu=NVIDIA+H100",
			done:   b + "/job-done/w1/sync-1-u1?gpu=NVIDIA+H100&isStream=false",
			ping0:  b + "/ping/w1?gpu=NVIDIA+H100&runpod_version=1.12.0",
			ping2:  b + "/ping/w1?gpu=NVIDIA+H100&job_id=a%2Cb&runpod_version=1.12.0",
		},
		{
			name: "no query strings; $RUNPOD_POD_ID in GET_JOB",
			cfg: Config{
				JobTakeURL: b + "/job-take/$RUNPOD_POD_ID",
				JobDoneURL: b + "/job-done/$RUNPOD_POD_ID/$ID",
				PingURL:    b + "/ping/$ID",
			},
			take0:  b + "/job-take/w1?job_in_progress=0",
			take1:  b + "/job-take/w1?job_in_progress=1",
			batch3: b + "/job-take-batch/w1?batch_size=3&job_in_progress=1",
			stop:   b + "/job-stop/w1",
			done:   b + "/job-done/w1/sync-1-u1?isStream=false",
			ping0:  b + "/ping/w1?runpod_version=1.12.0",
			ping2:  b + "/ping/w1?job_id=a%2Cb&runpod_version=1.12.0",
		},
		{
			name: "no /job-take/ segment: no batch, no stop channel",
			cfg: Config{
				JobTakeURL: "http://127.0.0.1:1/next?worker=$ID",
				JobDoneURL: "http://127.0.0.1:1/done?job=$ID&worker=$RUNPOD_POD_ID",
			},
			take0:  "http://127.0.0.1:1/next?worker=w1&job_in_progress=0",
			take1:  "http://127.0.0.1:1/next?worker=w1&job_in_progress=1",
			batch3: "http://127.0.0.1:1/next?worker=w1&job_in_progress=1",
			done:   "http://127.0.0.1:1/done?job=sync-1-u1&worker=w1&isStream=false",
			ping0:  "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoints(tc.cfg, "w1")
			check := func(what, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %q\n want %q", what, got, want)
				}
			}
			check("take0", e.takeURL(1, false), tc.take0)
			check("take1", e.takeURL(1, true), tc.take1)
			check("batch", e.takeURL(3, true), tc.batch3)
			check("stop", e.stop, tc.stop)
			check("done", e.doneURL("sync-1-u1"), tc.done)
			if tc.cfg.PingURL != "" {
				check("ping0", e.pingURL("", SDKVersion), tc.ping0)
				check("ping2", e.pingURL("a,b", SDKVersion), tc.ping2)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "empty env is local mode",
			env:  nil,
			check: func(t *testing.T, c Config) {
				if !c.Local() || c.PingURL != "" || c.PingInterval != 0 {
					t.Errorf("%v", c)
				}
			},
		},
		{
			name: "full env",
			env: map[string]string{
				"RUNPOD_WEBHOOK_GET_JOB": "http://x/job-take/$ID", "RUNPOD_WEBHOOK_POST_OUTPUT": "http://x/job-done/$RUNPOD_POD_ID/$ID",
				"RUNPOD_WEBHOOK_PING": "http://x/ping/$RUNPOD_POD_ID", "RUNPOD_AI_API_KEY": "k", "RUNPOD_POD_ID": "p",
				"RUNPOD_PING_INTERVAL": "2500", "RUNPOD_POD_HOSTNAME": "h", "RUNPOD_LOG_LEVEL": "info", "RUNPOD_REALTIME_PORT": "8080",
				"RUNPOD_REALTIME_CONCURRENCY": "2",
			},
			check: func(t *testing.T, c Config) {
				if c.Local() || c.PingInterval != 2500*time.Millisecond || c.APIKey != "k" || c.PodID != "p" ||
					c.Hostname != "h" || c.RealtimePort != 8080 || c.RealtimeConcurrency != 2 || c.LogLevel != "info" {
					t.Errorf("%+v", c)
				}
				if strings.Contains(c.String(), "k\"") || !strings.Contains(c.String(), "[redacted]") {
					t.Errorf("String() shows the key: %s", c)
				}
			},
		},
		{
			name: "SDK placeholders mean unset",
			env:  map[string]string{"RUNPOD_WEBHOOK_POST_OUTPUT": "JOB_DONE_URL", "RUNPOD_WEBHOOK_PING": "PING_NOT_SET", "RUNPOD_DEBUG_LEVEL": "WARN"},
			check: func(t *testing.T, c Config) {
				if c.JobDoneURL != "" || c.PingURL != "" || c.LogLevel != "WARN" {
					t.Errorf("%+v", c)
				}
			},
		},
		{name: "bad interval", env: map[string]string{"RUNPOD_PING_INTERVAL": "10s"}, wantErr: "RUNPOD_PING_INTERVAL"},
		{name: "bad port", env: map[string]string{"RUNPOD_REALTIME_PORT": "x"}, wantErr: "RUNPOD_REALTIME_PORT"},
		{name: "bad level", env: map[string]string{"RUNPOD_LOG_LEVEL": "LOUD"}, wantErr: "RUNPOD_LOG_LEVEL"},
		{name: "bad realtime concurrency", env: map[string]string{"RUNPOD_REALTIME_CONCURRENCY": "0"}, wantErr: "RUNPOD_REALTIME_CONCURRENCY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromEnv(runpodtest.Getenv(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestNewWorkerValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no take URL", Config{JobDoneURL: "http://x/$ID"}, "RUNPOD_WEBHOOK_GET_JOB is not set"},
		{"no done URL", Config{JobTakeURL: "http://x/job-take/$ID"}, "RUNPOD_WEBHOOK_POST_OUTPUT is not set"},
		{"not a URL", Config{JobTakeURL: "job-take", JobDoneURL: "http://x/$ID"}, "RUNPOD_WEBHOOK_GET_JOB=\"job-take\" is not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewWorker(tc.cfg, echo)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := NewWorker(Config{JobTakeURL: "http://x/job-take/$ID", JobDoneURL: "http://x/$ID"}, nil); err == nil {
		t.Errorf("nil handler accepted")
	}
}

func TestEncodeResult(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  Result
		want string
	}{
		{"output", Result{Output: map[string]any{"url": "https://x/?a=1&b=<2>"}}, `{"output": {"url":"https://x/?a=1&b=<2>"}}`},
		{"nil output", Result{}, `{"output": null}`},
		{"raw output", Result{Output: []byte(nil)}, `{"output": null}`},
		{"json.RawMessage sent as is", Result{Output: json.RawMessage(`{"a": [1, 2]}`)}, `{"output": {"a": [1, 2]}}`},
		{"empty json.RawMessage", Result{Output: json.RawMessage(nil)}, `{"output": null}`},
		{"error only", Result{Error: "bad input"}, `{"error": "bad input"}`},
		{"error with details", Result{Error: "bad", Output: map[string]string{"error_type": "input"}}, `{"output": {"error_type":"input"}, "error": "bad"}`},
		{"refresh", Result{Output: 1, RefreshWorker: true}, `{"output": 1, "stopPod": true}`},
		{"refresh failure", Result{Error: "x", RefreshWorker: true}, `{"error": "x", "stopPod": true}`},
		{"unencodable output", Result{Output: math.Inf(1)}, `{"output": {"error_type":"internal"}, "error": "internal error: the job's output could not be encoded as JSON: json: unsupported value: +Inf"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(encodeResult(tc.res).bytes()); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestWireRequests checks the exact request lines against a fake whose
// templates have a query string and one whose templates have none.
func TestWireRequests(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		opts                   runpodtest.Options
		take, done, ping, stop string
	}{
		{"templates with ?gpu=", runpodtest.Options{},
			"gpu=TEST&job_in_progress=0", "gpu=TEST&isStream=false", "gpu=TEST&job_id=j1&runpod_version=1.12.0", "gpu=TEST"},
		{"templates without a query", runpodtest.Options{NoQuery: true},
			"job_in_progress=0", "isStream=false", "job_id=j1&runpod_version=1.12.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, tc.opts)
			release := make(chan struct{})
			fake.AddJobs(runpodtest.Job{ID: "j1", Input: 1})
			h := func(ctx context.Context, j Job, p Progress) Result { <-release; return echo(ctx, j, p) }
			start(t, fake, h, nil)
			ctx := ctxFor(t, 5*time.Second)
			if _, err := fake.WaitPings(ctx, 1, func(p runpodtest.Ping) bool { return p.HasJobIDsParam }); err != nil {
				t.Fatal(err)
			}
			if _, err := fake.WaitRequests(ctx, runpodtest.RouteStop, 1); err != nil {
				t.Fatal(err)
			}
			close(release)
			res, err := fake.WaitResult(ctx, "j1")
			if err != nil {
				t.Fatal(err)
			}
			take := fake.Takes()[0]
			var ping runpodtest.Ping
			for _, p := range fake.Pings() {
				if p.HasJobIDsParam {
					ping = p
					break
				}
			}
			stop := fake.Requests(runpodtest.RouteStop)[0]
			for _, c := range [][3]string{
				{"take", take.RawQuery, tc.take},
				{"done", res.RawQuery, tc.done},
				{"ping", ping.RawQuery, tc.ping},
				{"stop", stop.RawQuery, tc.stop},
			} {
				if c[1] != c[2] {
					t.Errorf("%s query %q, want %q", c[0], c[1], c[2])
				}
			}
			for _, r := range []runpodtest.Request{take, stop} {
				if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != fake.APIKey() || r.Header.Get("Accept") != "*/*" {
					t.Errorf("%s headers %v", r.Route, r.Header)
				}
			}
		})
	}
}

// BenchmarkIdleTake measures one empty job-take round trip, the idle loop's
// unit of work.
func BenchmarkIdleTake(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := client{hc: &http.Client{Transport: tr}, key: "k", ua: "ua"}
	e := newEndpoints(Config{JobTakeURL: srv.URL + "/v2/ep/job-take/$ID?gpu=X"}, "w1")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.take(ctx, e.takeURL(1, false), time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
