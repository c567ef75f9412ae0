package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/gobuild"
	"github.com/runpod-comfy/worker/internal/syncbuf"
	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

// syncBuf captures output written from several goroutines.
type syncBuf = syncbuf.Buffer

// binaries builds the worker and the fake ComfyUI once per test binary:
// end-to-end tests run the real program as RunPod would.
func binaries(t testing.TB) (string, string) {
	t.Helper()
	return gobuild.MustBinary(t, gobuild.Worker), gobuild.MustBinary(t, gobuild.FakeComfy)
}

// workerProc is a running worker binary.
type workerProc struct {
	cmd    *exec.Cmd
	stderr *syncBuf
	done   chan error
}

// startWorker runs `worker` (no subcommand) against the fake job API.
func startWorker(t testing.TB, e *testEnv, rp *runpodtest.Server, extra map[string]string) *workerProc {
	t.Helper()
	bin, fake := binaries(t)
	env := []string{"PATH=" + os.Getenv("PATH"), "FAKE_COMFY_BIN=" + fake, "RUNPOD_VOLUME_WAIT=0", "COMFY_SCRATCH_DIR=" + filepath.Join(e.dir, "scratch")}
	for k, v := range e.vars {
		env = append(env, k+"="+v)
	}
	for k, v := range rp.Env() {
		if k == "RUNPOD_PING_INTERVAL" {
			v = "200"
		}
		env = append(env, k+"="+v)
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Dir = e.dir
	wp := &workerProc{cmd: cmd, stderr: &syncBuf{}, done: make(chan error, 1)}
	cmd.Stderr = wp.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { wp.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-wp.done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("worker stderr:\n%s", tail(wp.stderr.String(), 60))
		}
	})
	return wp
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

const e2eWorkflow = `{"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 65280}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e"}}}`

func jobInput(version, wf string, extra string) json.RawMessage {
	return json.RawMessage(`{"version_id": "` + version + `", "workflow": ` + wf + extra + `}`)
}

// TestServerlessEndToEnd: fake job API -> worker binary -> realize from
// git over HTTP, a model server and offline wheels -> a supervised fake
// ComfyUI (started through the build's real venv python and main.py) ->
// results posted.
func TestServerlessEndToEnd(t *testing.T) {
	e := newTestEnv(t)
	versionFixture(t, e)
	data, _ := os.ReadFile(filepath.Join(e.vars["COMFY_VERSIONS_DIR"], "demo.json"))
	os.WriteFile(filepath.Join(e.vars["COMFY_VERSIONS_DIR"], "demo2.json"), bytes.Replace(data, []byte(`"demo"`), []byte(`"demo2"`), 1), 0o644)
	rp := runpodtest.New(runpodtest.Options{})
	t.Cleanup(rp.Close)
	wp := startWorker(t, e, rp, nil)

	// 1. A job: realized lazily, then run; the result POST fails three
	// times first and is still delivered exactly once.
	rp.Inject(runpodtest.RouteDone, runpodtest.Fault{Status: 500}, runpodtest.Fault{Drop: true}, runpodtest.Fault{Status: 503})
	rp.AddJobs(runpodtest.Job{ID: "j1", Input: jobInput("demo", e2eWorkflow, "")})
	res := rp.MustResult(t, "j1")
	var out struct {
		VersionID string `json:"version_id"`
		Outputs   []struct {
			Filename, Base64, SHA256 string
		} `json:"outputs"`
		Timings map[string]float64 `json:"timings_ms"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil || res.Error != nil {
		t.Fatalf("j1: error=%s output=%s", res.Error, res.Output)
	}
	png, _ := base64.StdEncoding.DecodeString(out.Outputs[0].Base64)
	if out.VersionID != "demo" || len(out.Outputs) != 1 || !bytes.HasPrefix(png, []byte("\x89PNG")) || out.Timings["realize"] <= 0 {
		t.Fatalf("j1 output: %s", res.Output)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rp.Results("j1")); n != 1 {
		t.Fatalf("j1 delivered %d times", n)
	}

	// 2. A burst of 50 bad inputs: each gets its own clear error.
	var ids []string
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("bad%d", i)
		ids = append(ids, id)
		rp.AddJobs(runpodtest.Job{ID: id, Input: json.RawMessage(fmt.Sprintf(`{"version_id": "demo", "workflow": %s, "images": [{"name": "x%d.png", "image": "%%%%%%"}]}`, e2eWorkflow, i))})
	}
	for _, id := range ids {
		p := rp.MustResult(t, id)
		if !strings.Contains(p.ErrorString(), "not valid base64") {
			t.Fatalf("%s: error %s", id, p.ErrorString())
		}
	}

	// 3. Timeout: the prompt is interrupted, the error says so, the next
	// job works.
	slow := `{"1": {"class_type": "FakeSampler", "inputs": {"steps": 200, "step_ms": 50}},
	  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "slow"}}}`
	rp.AddJobs(runpodtest.Job{ID: "t1", Input: jobInput("demo", slow, `, "timeout": 1`)})
	if p := rp.MustResult(t, "t1"); !strings.Contains(p.ErrorString(), "interrupted") {
		t.Fatalf("timeout job: %s", p.ErrorString())
	}
	// 4. Another version: ComfyUI is switched.
	rp.AddJobs(runpodtest.Job{ID: "j2", Input: jobInput("demo2", e2eWorkflow, "")}, runpodtest.Job{ID: "j3", Input: jobInput("demo", e2eWorkflow, "")})
	for _, id := range []string{"j2", "j3"} {
		if p := rp.MustResult(t, id); p.Error != nil {
			t.Fatalf("%s: %s", id, p.ErrorString())
		}
	}
	if !strings.Contains(wp.stderr.String(), "restarting ComfyUI") {
		t.Error("no ComfyUI switch was logged between versions")
	}

	// 5. SIGTERM mid-job: the result is posted and the worker exits 0.
	rp.AddJobs(runpodtest.Job{ID: "s1", Input: jobInput("demo", strings.Replace(slow, `"steps": 200`, `"steps": 30`, 1), "")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := rp.WaitProgress(ctx, "s1", 1); err != nil {
		t.Fatal(err)
	}
	wp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-wp.done:
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM", err)
		}
		wp.done <- nil
	case <-time.After(45 * time.Second):
		t.Fatal("worker did not exit after SIGTERM")
	}
	if n := len(rp.Results("s1")); n != 1 {
		t.Fatalf("s1: %d results after SIGTERM", n)
	}
}

// TestServerlessCrashRecovery: ComfyUI dies mid-job; the job fails at once
// with the log tail and the next job runs on a fresh ComfyUI.
func TestServerlessCrashRecovery(t *testing.T) {
	e := newTestEnv(t)
	versionFixture(t, e)
	rp := runpodtest.New(runpodtest.Options{})
	t.Cleanup(rp.Close)
	startWorker(t, e, rp, map[string]string{"FAKECOMFY_MODE": "crash-on-prompt", "FAKECOMFY_CRASH_MARKER": filepath.Join(e.dir, "crashed")})
	rp.AddJobs(runpodtest.Job{ID: "c1", Input: jobInput("demo", e2eWorkflow, "")}, runpodtest.Job{ID: "c2", Input: jobInput("demo", e2eWorkflow, "")})
	p := rp.MustResult(t, "c1")
	var details map[string]any
	json.Unmarshal(p.Output, &details)
	if !strings.Contains(p.ErrorString(), "ComfyUI exited unexpectedly") || details["error_type"] != "comfy_execution" || details["log_tail"] == nil {
		t.Fatalf("crash job: %s %s", p.ErrorString(), p.Output)
	}
	if p := rp.MustResult(t, "c2"); p.Error != nil {
		t.Fatalf("job after the crash: %s", p.ErrorString())
	}
}
