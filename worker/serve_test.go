package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/envconf"
	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

func TestLogLevelChoice(t *testing.T) {
	for _, tc := range []struct {
		name          string
		verbose       bool
		flag, rpFlag  string
		comfy, rpEnv  string
		serving       bool
		want, wantErr string
	}{
		{name: "nothing", serving: true, want: ""},
		{name: "-v wins", verbose: true, flag: "error", want: "debug"},
		{name: "--log-level over the SDK flag", flag: "warn", rpFlag: "ERROR", serving: true, want: "warn"},
		{name: "--rp_log_level in SDK names", rpFlag: "WARN", serving: true, want: "warn"},
		{name: "--rp_log_level over COMFY_LOG_LEVEL", rpFlag: "ERROR", comfy: "debug", serving: true, want: "error"},
		{name: "COMFY_LOG_LEVEL over RUNPOD_LOG_LEVEL", comfy: "info", rpEnv: "ERROR", serving: true, want: "info"},
		{name: "RUNPOD_LOG_LEVEL", rpEnv: "NOTSET", serving: true, want: "trace"},
		{name: "RUNPOD_LOG_LEVEL is the worker's only", rpEnv: "ERROR", serving: false, want: ""},
		{name: "bad SDK level", rpFlag: "LOUD", serving: true, wantErr: `--rp_log_level="LOUD"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &app{verbose: tc.verbose, logLevel: tc.flag, cfg: config{LogLevel: tc.comfy},
				getenv: func(k string) string {
					if k == "RUNPOD_LOG_LEVEL" {
						return tc.rpEnv
					}
					return ""
				}}
			got, err := a.level(tc.serving, tc.rpFlag)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("level = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestTestInputWinsOverTheJobLoop: as with the SDK, --test_input runs one
// local job even where RUNPOD_WEBHOOK_GET_JOB is set; the SDK's other
// flags are accepted; --rp_log_level takes effect.
func TestTestInputWinsOverTheJobLoop(t *testing.T) {
	e := newTestEnv(t)
	e.vars["RUNPOD_WEBHOOK_GET_JOB"] = "http://127.0.0.1:1/job-take/$ID"
	e.vars["RUNPOD_WEBHOOK_POST_OUTPUT"] = "http://127.0.0.1:1/job-done/$ID"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"--test_input", `{"input": {"version_id": "nope", "workflow": {"1": {"class_type": "SaveImage", "inputs": {}}}}}`, "--rp_debugger", "--rp_api_concurrency", "1", "--rp_log_level", "ERROR", "--log-format", "json"},
		strings.NewReader(""), &out, &errb, e.getenv)
	if ctx.Err() != nil {
		t.Fatal("the worker went into the job loop instead of running the test input")
	}
	if code != exitFailure || !strings.Contains(out.String(), `"error"`) || !strings.Contains(out.String(), "nope") {
		t.Fatalf("exit %d, stdout %s", code, out.String())
	}
	if strings.Contains(errb.String(), `"level":"info"`) || strings.Contains(errb.String(), `"level":"warn"`) {
		t.Errorf("--rp_log_level ERROR still logged below error:\n%s", errb.String())
	}
}

// TestRealtimePortServesTheAPI: RUNPOD_REALTIME_PORT starts the RunPod API
// server (here narrowed to loopback with --rp_api_host).
func TestRealtimePortServesTheAPI(t *testing.T) {
	e := newTestEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	e.vars["RUNPOD_REALTIME_PORT"] = fmt.Sprint(port)
	e.vars["RUNPOD_VOLUME_WAIT"] = "0"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--rp_api_host", "127.0.0.1"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}, e.getenv)
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("exit %d after cancel", code)
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET /health = %d", resp.StatusCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no API server on port %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestJobTimeoutEnv(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    time.Duration
		wantErr string
	}{
		{map[string]string{}, 0, ""},
		{map[string]string{"COMFY_JOB_TIMEOUT": "90"}, 90 * time.Second, ""},
		{map[string]string{"COMFY_RESPOND_TIMEOUT": "300"}, 300 * time.Second, ""},
		{map[string]string{"COMFY_JOB_TIMEOUT": "60", "COMFY_RESPOND_TIMEOUT": "300"}, 60 * time.Second, ""},
		{map[string]string{"COMFY_RESPOND_TIMEOUT": "soon"}, 0, "COMFY_RESPOND_TIMEOUT"},
	} {
		env := &envconf.Reader{Getenv: func(k string) string { return tc.env[k] }}
		got, err := jobTimeout(env), env.Err()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err = %v, want one naming %s", tc.env, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %v, %v; want %v", tc.env, got, err, tc.want)
		}
	}
}

// TestJobLoopWaitsForTheVolumeBeforeReadingIt: a GCS key file on a
// network volume that is mounted after the container starts is read only
// once the volume is there: the worker waits, then takes jobs.
func TestJobLoopWaitsForTheVolumeBeforeReadingIt(t *testing.T) {
	e := newTestEnv(t)
	rp := runpodtest.New(runpodtest.Options{})
	t.Cleanup(rp.Close)
	for k, v := range rp.Env() {
		e.vars[k] = v
	}
	vol := filepath.Join(e.dir, "runpod-volume")
	key := filepath.Join(vol, "keys", "gcs.json")
	e.vars["RUNPOD_VOLUME_ROOT"] = vol
	e.vars["RUNPOD_VOLUME_WAIT"] = "20"
	e.vars["GOOGLE_APPLICATION_CREDENTIALS"] = key
	e.vars["GCS_BUCKET"] = "outputs"
	e.vars["COMFY_SCRATCH_DIR"] = filepath.Join(e.dir, "scratch")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb syncBuf
	go func() { done <- run(ctx, nil, strings.NewReader(""), &bytes.Buffer{}, &errb, e.getenv) }()
	time.Sleep(500 * time.Millisecond)
	select {
	case code := <-done:
		t.Fatalf("the worker exited (%d) before its volume was mounted:\n%s", code, errb.String())
	default:
	}
	os.MkdirAll(filepath.Dir(key), 0o755)
	os.WriteFile(key, []byte(`{"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}`), 0o600)
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	if err := rp.Wait(wctx, func() bool { return len(rp.Takes()) > 0 }); err != nil {
		t.Fatalf("no job take after the volume appeared: %v\n%s", err, errb.String())
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit %d after SIGTERM:\n%s", code, errb.String())
	}
}

// TestUnusableGCSStopsTheWorker: GCS settings whose key cannot be used stop
// the worker at start, naming the setting and what to do, never the key.
func TestUnusableGCSStopsTheWorker(t *testing.T) {
	e := newTestEnv(t)
	e.vars["GCS_BUCKET"] = "outputs"
	e.vars["GCS_CREDENTIALS_JSON"] = `{"type": "service_account", "client_email": "x@y", "private_key": "SECRETKEYTEXT"}`
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--test_input", `{"input": {}}`}, strings.NewReader(""), &out, &errb, e.getenv)
	if code != exitUsage || !strings.Contains(errb.String(), "GCS is configured (GCS_BUCKET, a key secret) but unusable") ||
		!strings.Contains(errb.String(), "private_key") || strings.Contains(errb.String(), "SECRETKEYTEXT") {
		t.Errorf("exit %d\n%s", code, errb.String())
	}
}

// TestURLInputRefusalsNameTheSetting: a refused address class says which
// worker setting allows it.
func TestURLInputRefusalsNameTheSetting(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	fetch, err := a.urlFetcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{
		"https://127.0.0.1/x":       "COMFY_URL_ALLOW_LOOPBACK",
		"https://10.1.2.3/x":        "COMFY_URL_ALLOW_PRIVATE",
		"https://169.254.10.10/x":   "COMFY_URL_ALLOW_LINK_LOCAL",
		"https://169.254.169.254/x": "COMFY_URL_ALLOW_METADATA",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rc, err := fetch(ctx, url)
		cancel()
		if err == nil {
			rc.Close()
			t.Errorf("%s was fetched", url)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v (want it to name %s)", url, err, want)
		}
	}
}
