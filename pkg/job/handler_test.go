package job

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/gobuild"
	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// fakeComfy builds the fake ComfyUI program once per test binary.
func fakeComfy(t *testing.T) string {
	t.Helper()
	return gobuild.MustBinary(t, gobuild.FakeComfy)
}

// fakeBuild is a "build" whose python runs the fake ComfyUI.
func fakeBuild(t *testing.T, id string) *Build {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.py"), []byte("# ComfyUI\n"), 0o644)
	py := filepath.Join(dir, "python")
	os.WriteFile(py, []byte("#!/bin/sh\nexec "+fakeComfy(t)+" \"$@\"\n"), 0o755)
	return &Build{VersionID: id, Dir: dir, Python: py, Env: map[string]string{}, Digest: "d-" + id}
}

type harness struct {
	t        *testing.T
	h        *Handler
	builds   map[string]*Build
	prepared int
	updates  []any
	mu       sync.Mutex
}

func newHarness(t *testing.T, env map[string]string) *harness {
	t.Helper()
	return newHarnessWith(t, env, nil)
}

// newHarnessWith lets a test change the handler's configuration.
func newHarnessWith(t *testing.T, env map[string]string, mut func(*Config)) *harness {
	t.Helper()
	hs := &harness{t: t, builds: map[string]*Build{"v1": fakeBuild(t, "v1"), "v2": fakeBuild(t, "v2")}}
	environ := os.Environ()
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg := Config{
		Versions: PrepareFunc(func(ctx context.Context, id string, p progress.Func) (*Build, error) {
			hs.mu.Lock()
			defer hs.mu.Unlock()
			hs.prepared++
			if b, ok := hs.builds[id]; ok {
				return b, nil
			}
			return nil, &spec.NotFoundError{ID: id, Dirs: []string{"versions"}}
		}),
		Scratch:          t.TempDir(),
		Comfy:            comfy.Config{Environ: environ, GPU: func() bool { return false }, StartTimeout: 20 * time.Second, StopGrace: 2 * time.Second},
		ProgressInterval: time.Millisecond,
	}
	if mut != nil {
		mut(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	t.Cleanup(func() { h.Close(context.Background()) })
	return hs
}

func (hs *harness) run(input string) Outcome {
	hs.t.Helper()
	return hs.h.Handle(context.Background(), "job-"+fmt.Sprint(time.Now().UnixNano()), json.RawMessage(input), func(v any) {
		hs.mu.Lock()
		hs.updates = append(hs.updates, v)
		hs.mu.Unlock()
	})
}

const okWorkflow = `{"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 255}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "out"}}}`

func TestHandleSuccessWarmAndSwitch(t *testing.T) {
	hs := newHarness(t, nil)
	out := hs.run(`{"version_id": "v1", "workflow": ` + okWorkflow + `}`)
	if out.Failure != nil {
		t.Fatalf("job failed: %+v", out.Failure)
	}
	var res output.Result
	if err := json.Unmarshal(out.Output.(*output.Rendered).Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].ContentType != "image/png" || res.Outputs[0].NodeID != "2" {
		t.Fatalf("outputs = %+v", res.Outputs)
	}
	png := res.Outputs[0].Base64.Bytes()
	if !strings.HasPrefix(string(png), "\x89PNG") {
		t.Error("output is not a PNG")
	}
	for _, k := range []string{"realize", "start", "queue", "execute", "deliver", "total"} {
		if _, ok := res.Timings[k]; !ok {
			t.Errorf("timing %s missing: %v", k, res.Timings)
		}
	}
	if len(res.NodeTimings) != 2 {
		t.Errorf("node timings %v, want nodes 1 and 2", res.NodeTimings)
	}
	pid := hs.h.warm.sup.PID()
	// Same version: the warm ComfyUI serves it; the identical workflow
	// still returns its file.
	out = hs.run(`{"version_id": "v1", "workflow": ` + okWorkflow + `, "response_format": "worker-comfyui"}`)
	if out.Failure != nil || hs.h.warm.sup.PID() != pid {
		t.Fatalf("second job: %+v, pid %d -> %d", out.Failure, pid, hs.h.warm.sup.PID())
	}
	b, _ := json.Marshal(out.Output)
	if !strings.Contains(string(b), `"type":"base64"`) {
		t.Errorf("worker-comfyui shape: %s", b)
	}
	// Another version: ComfyUI is switched.
	out = hs.run(`{"version_id": "v2", "workflow": ` + okWorkflow + `}`)
	if out.Failure != nil || hs.h.warm.sup.PID() == pid || hs.h.warm.build.VersionID != "v2" {
		t.Fatalf("switch: %+v", out.Failure)
	}
	// The scratch holds no job leftovers once the cleanup is done.
	hs.h.cleaning.Wait()
	in, outDir, _, _ := hs.h.warm.sup.Dirs()
	for _, d := range []string{in, outDir, filepath.Join(hs.h.cfg.Scratch, "jobs")} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if !e.IsDir() {
				t.Errorf("left behind in %s: %s", d, e.Name())
			}
		}
	}
	if len(hs.updates) == 0 {
		t.Error("no progress update was sent")
	}
}

func TestHandleFailures(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "crashed")
	hs := newHarness(t, map[string]string{"FAKECOMFY_MODE": "crash-on-prompt", "FAKECOMFY_CRASH_MARKER": marker})
	for _, tc := range []struct {
		name, input, typ, msg string
	}{
		{"bad input", `{"version_id": "v1"}`, ErrInput, "workflow"},
		{"unknown version", `{"version_id": "nope", "workflow": ` + okWorkflow + `}`, ErrInput, `version "nope" not found`},
		{"crash mid-job", `{"version_id": "v1", "workflow": ` + okWorkflow + `}`, ErrComfyExecution, "ComfyUI exited unexpectedly"},
		{"after the crash", `{"version_id": "v1", "workflow": ` + okWorkflow + `}`, "", ""},
		{"validation", `{"version_id": "v1", "workflow": {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}}`, ErrComfyValidation, ""},
		{"execution error", `{"version_id": "v1", "workflow": {"1": {"class_type": "FakeRaise", "inputs": {"message": "boom"}},
		   "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}}`, ErrComfyExecution, "boom"},
		{"timeout", `{"version_id": "v1", "timeout": 0.5, "workflow": {"1": {"class_type": "FakeSampler", "inputs": {"steps": 100, "step_ms": 50}},
		   "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}}}}`, ErrTimeout, "interrupted"},
		{"after the timeout", `{"version_id": "v1", "workflow": ` + okWorkflow + `}`, "", ""},
		{"too large for base64", `{"version_id": "v1", "workflow": {"1": {"class_type": "FakeNoiseImage", "inputs": {"width": 3000, "height": 3000, "seed": 1}},
		   "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "big"}}}}`, ErrOutput, "use \"output_mode\": \"gcs\""},
		// Refused before the version is realized or the workflow run.
		{"gcs not configured", `{"version_id": "v1", "output_mode": "gcs", "workflow": ` + okWorkflow + `}`, ErrInput, "GCS delivery is not configured"},
		{"s3 not configured", `{"version_id": "v1", "output_mode": "s3", "workflow": ` + okWorkflow + `}`, ErrInput, "S3 delivery is not configured"},
	} {
		out := hs.run(tc.input)
		if tc.typ == "" {
			if out.Failure != nil {
				t.Errorf("%s: %+v", tc.name, out.Failure)
			}
			continue
		}
		if out.Failure == nil || out.Failure.Type != tc.typ || !strings.Contains(out.Failure.Message, tc.msg) || strings.Contains(out.Failure.Message, "\n") {
			t.Errorf("%s: got %+v, want type %s with %q on one line", tc.name, out.Failure, tc.typ, tc.msg)
			continue
		}
		if out.Failure.Details["error_type"] != tc.typ {
			t.Errorf("%s: details %v", tc.name, out.Failure.Details)
		}
	}
}

func TestHandleNamesImportFailures(t *testing.T) {
	hs := newHarness(t, map[string]string{"FAKECOMFY_IMPORT_FAILED": "ComfyUI-Broken"})
	out := hs.run(`{"version_id": "v1", "workflow": {"1": {"class_type": "BrokenNode", "inputs": {}}}}`)
	if out.Failure == nil || out.Failure.Type != ErrComfyValidation || !strings.Contains(out.Failure.Message, "ComfyUI-Broken") {
		t.Fatalf("got %+v, want a validation error naming the node that failed to import", out.Failure)
	}
	// Details use the result's snake_case keys.
	b, _ := json.Marshal(out.Failure.Details)
	for _, key := range []string{`"import_failures":[{"name":"ComfyUI-Broken"`, `"validation":{"type":"invalid_prompt"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("details lack %s: %s", key, b)
		}
	}
}

func TestMemoryBudget(t *testing.T) {
	gcs := &Handler{cfg: Config{Base64Limit: 4000, AutoThreshold: 1000, GCS: nopDeliverer{}}}
	s3 := &Handler{cfg: Config{Base64Limit: 4000, AutoThreshold: 1000, S3: nopDeliverer{}}}
	plain := &Handler{cfg: Config{Base64Limit: 4000, AutoThreshold: 1000}}
	for _, tc := range []struct {
		h    *Handler
		mode string
		want int64
	}{
		{plain, "base64", 3000}, // what 4000 bytes of base64 carry
		{plain, "auto", 3000},   // without GCS everything is returned inline
		{gcs, "auto", 1000},     // above the threshold it goes to GCS, from disk
		{gcs, "gcs", 0},
		{s3, "auto", 1000}, // S3 is a store for auto too
		{s3, "s3", 0},
	} {
		if got := tc.h.memoryBudget(&Input{OutputMode: tc.mode}); got != tc.want {
			t.Errorf("%s (store %q): budget %d, want %d", tc.mode, tc.h.autoStore(), got, tc.want)
		}
	}
}

type nopDeliverer struct{}

func (nopDeliverer) Check(*Input) error { return nil }

func (nopDeliverer) Deliver(context.Context, string, *Input, []output.Local) ([]output.File, error) {
	return nil, nil
}

// TestWorkflowURLTooLarge: a workflow_url answering more than a workflow
// could be fails with a size error, not a JSON one.
func TestWorkflowURLTooLarge(t *testing.T) {
	hs := newHarness(t, nil)
	hs.h.cfg.Fetch = func(ctx context.Context, url string) (io.ReadCloser, error) {
		return io.NopCloser(io.LimitReader(zeroReader{}, maxWorkflowBytes+10)), nil
	}
	out := hs.run(`{"version_id": "v1", "workflow_url": "https://example.com/wf.json"}`)
	if out.Failure == nil || out.Failure.Type != ErrInput || !strings.Contains(out.Failure.Message, "over 32 MB") {
		t.Fatalf("failure = %+v", out.Failure)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestHandleReturnsTexts: a node that shows text instead of writing a
// file (PreviewAny) has its text in the result, next to the files.
func TestHandleReturnsTexts(t *testing.T) {
	hs := newHarness(t, nil)
	out := hs.run(`{"version_id": "v1", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
	  "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
	  "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}}}}`)
	if out.Failure != nil {
		t.Fatalf("job failed: %+v", out.Failure)
	}
	var res struct {
		Outputs []json.RawMessage `json:"outputs"`
		Texts   []output.Text     `json:"texts"`
	}
	if err := json.Unmarshal(out.Output.(*output.Rendered).Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || len(res.Texts) != 1 || res.Texts[0].NodeID != "2" || res.Texts[0].Kind != "text" || !strings.Contains(res.Texts[0].Text, "value") {
		t.Errorf("outputs %d, texts %+v", len(res.Outputs), res.Texts)
	}
}

func TestTextsAreBounded(t *testing.T) {
	big := strings.Repeat("x", maxTextBytes/2+1)
	got, warnings := texts([]comfy.TextOutput{{NodeID: "1", Kind: "text", Text: "short"}, {NodeID: "2", Kind: "text", Text: big}, {NodeID: "3", Kind: "text", Text: big}})
	if len(got) != 2 || len(warnings) != 1 || !strings.Contains(warnings[0], "node 3") {
		t.Errorf("texts %d, warnings %v", len(got), warnings)
	}
}
