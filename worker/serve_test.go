package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
		got, err := jobTimeout(func(k string) string { return tc.env[k] })
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
