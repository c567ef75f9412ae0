package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

func TestPrewarmConfig(t *testing.T) {
	dir := t.TempDir()
	versions := filepath.Join(dir, "versions")
	os.MkdirAll(versions, 0o755)
	os.WriteFile(filepath.Join(versions, "demo.json"), []byte(`{"schema_version": 2, "version_id": "demo", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "commit": "`+strings.Repeat("a", 40)+`"}}`), 0o644)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	good := write("good.json", `{"1": {"class_type": "EmptyImage", "inputs": {}}}`)
	for _, tc := range []struct {
		name            string
		env             map[string]string
		wantID, wantErr string
		wantWorkflow    bool
	}{
		{name: "off", env: map[string]string{}},
		{name: "off even with a default version", env: map[string]string{"COMFY_VERSION_NAME": "demo"}},
		{name: "explicitly off", env: map[string]string{"COMFY_PREWARM": "0", "COMFY_WARMUP_WORKFLOW": good}},
		{name: "a version", env: map[string]string{"COMFY_PREWARM": "demo"}, wantID: "demo"},
		{name: "the default version", env: map[string]string{"COMFY_PREWARM": "true", "COMFY_VERSION_NAME": "demo"}, wantID: "demo"},
		{name: "a workflow alone warms the default", env: map[string]string{"COMFY_WARMUP_WORKFLOW": good, "COMFY_VERSION_NAME": "demo"}, wantID: "demo", wantWorkflow: true},
		{name: "no version to warm", env: map[string]string{"COMFY_PREWARM": "1"}, wantErr: "set COMFY_VERSION_NAME"},
		{name: "unknown version", env: map[string]string{"COMFY_PREWARM": "demo3"}, wantErr: `version "demo3" not found`},
		{name: "missing workflow file", env: map[string]string{"COMFY_PREWARM": "demo", "COMFY_WARMUP_WORKFLOW": filepath.Join(dir, "none.json")}, wantErr: "COMFY_WARMUP_WORKFLOW: open"},
		{name: "workflow not JSON", env: map[string]string{"COMFY_PREWARM": "demo", "COMFY_WARMUP_WORKFLOW": write("bad.json", "{")}, wantErr: "workflow: not valid JSON"},
		{name: "UI-format workflow", env: map[string]string{"COMFY_PREWARM": "demo", "COMFY_WARMUP_WORKFLOW": write("ui.json", `{"nodes": [], "links": []}`)}, wantErr: "Export (API)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["COMFY_VERSIONS_DIR"] = versions
			getenv := func(k string) string { return tc.env[k] }
			cfg, err := loadConfig(getenv)
			if err != nil {
				t.Fatal(err)
			}
			a := &app{ran: true, cfg: cfg, getenv: getenv}
			w, err := a.prewarmConfig()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || a.exitCode(err) != exitUsage {
					t.Fatalf("err = %v (exit %d), want exit 2 with %q", err, a.exitCode(err), tc.wantErr)
				}
				return
			}
			var id string
			var wf []byte
			if w != nil {
				id, wf = w.VersionID, w.Workflow
			}
			if err != nil || id != tc.wantID || (wf != nil) != tc.wantWorkflow {
				t.Errorf("got %q, workflow %v, %v; want %q, workflow %v", id, wf != nil, err, tc.wantID, tc.wantWorkflow)
			}
		})
	}
}

// TestServerlessPrewarm: with COMFY_PREWARM and a warm-up workflow the
// worker realizes the version and runs the workflow while it already
// answers the job API; the first job then finds ComfyUI warm.
func TestServerlessPrewarm(t *testing.T) {
	e := newTestEnv(t)
	versionFixture(t, e)
	wf := filepath.Join(e.dir, "warmup.json")
	os.WriteFile(wf, []byte(e2eWorkflow), 0o644)
	rp := runpodtest.New(runpodtest.Options{})
	t.Cleanup(rp.Close)
	wp := startWorker(t, e, rp, map[string]string{"COMFY_PREWARM": "demo", "COMFY_WARMUP_WORKFLOW": wf})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := rp.Wait(ctx, func() bool { return strings.Contains(wp.stderr.String(), "worker warmed up") }); err != nil {
		t.Fatalf("no warm-up: %v", err)
	}
	if len(rp.Takes()) == 0 {
		t.Error("the worker took no job while it warmed up")
	}
	rp.AddJobs(runpodtest.Job{ID: "j1", Input: jobInput("demo", e2eWorkflow, "")})
	res := rp.MustResult(t, "j1")
	var out struct {
		Timings map[string]float64 `json:"timings_ms"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil || res.Error != nil {
		t.Fatalf("j1: error=%s output=%s", res.Error, res.Output)
	}
	if n := strings.Count(wp.stderr.String(), `"message":"starting ComfyUI"`); n != 1 || out.Timings["start"] > 200 || out.Timings["realize"] > 200 {
		t.Errorf("ComfyUI started %d times; the job's timings %v", n, out.Timings)
	}
}
