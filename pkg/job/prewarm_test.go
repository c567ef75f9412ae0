package job

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrewarm(t *testing.T) {
	for _, tc := range []struct {
		name, version, workflow, wantErr string
	}{
		{name: "start only", version: "v1"},
		{name: "with a workflow", version: "v1", workflow: okWorkflow},
		{name: "unknown version", version: "nope", wantErr: `warm-up of nope: version "nope" not found`},
		{name: "the workflow runs", version: "v1", workflow: `{"1": {"class_type": "FakeRaise", "inputs": {"message": "warm-up boom"}},
		   "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}`, wantErr: "warm-up boom"},
		{name: "not JSON", version: "v1", workflow: `{"1": `, wantErr: "workflow: not valid JSON"},
		{name: "UI-format workflow", version: "v1", workflow: `{"nodes": [], "links": []}`, wantErr: "UI format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			var wf json.RawMessage
			if tc.workflow != "" {
				wf = json.RawMessage(tc.workflow)
			}
			err := hs.h.Prewarm(context.Background(), tc.version, wf)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hs.h.warm == nil || hs.h.warm.build.VersionID != tc.version {
				t.Fatal("no warm ComfyUI after the warm-up")
			}
			pid := hs.h.warm.sup.PID()
			// The warm-up's files are gone, as a job's are.
			hs.h.cleaning.Wait()
			_, outDir, _, _ := hs.h.warm.sup.Dirs()
			for _, d := range []string{outDir, filepath.Join(hs.h.cfg.Scratch, "jobs")} {
				if entries, _ := os.ReadDir(d); len(entries) > 0 {
					t.Errorf("warm-up left %d entries in %s", len(entries), d)
				}
			}
			// The first job finds the same ComfyUI and the version prepared.
			out := hs.run(`{"version_id": "v1", "workflow": ` + okWorkflow + `}`)
			if out.Failure != nil {
				t.Fatalf("job after warm-up: %+v", out.Failure)
			}
			if hs.h.warm.sup.PID() != pid {
				t.Error("the job restarted ComfyUI after the warm-up")
			}
		})
	}
}

// TestJobWaitsForPrewarm: a job that arrives while the worker warms up
// waits and then runs on the ComfyUI the warm-up started.
func TestJobWaitsForPrewarm(t *testing.T) {
	hs := newHarness(t, nil)
	// The build's python counts the ComfyUI processes started.
	starts := filepath.Join(t.TempDir(), "starts")
	py := hs.builds["v1"].Python
	os.WriteFile(py, []byte("#!/bin/sh\necho start >> "+starts+"\nexec "+fakeComfy(t)+" \"$@\"\n"), 0o755)
	slow := json.RawMessage(`{"1": {"class_type": "FakeSampler", "inputs": {"steps": 10, "step_ms": 50}},
	   "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "warm"}}}`)
	done := make(chan error, 1)
	go func() { done <- hs.h.Prewarm(context.Background(), "v1", slow) }()
	for hs.prepareCount() == 0 {
		select {
		case err := <-done:
			t.Fatalf("warm-up ended before it prepared: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	out := hs.run(`{"version_id": "v1", "workflow": ` + okWorkflow + `}`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out.Failure != nil {
		t.Fatalf("job: %+v", out.Failure)
	}
	if b, _ := os.ReadFile(starts); strings.Count(string(b), "start") != 1 {
		t.Errorf("ComfyUI was started %d times, want once (by the warm-up)", strings.Count(string(b), "start"))
	}
}

func (hs *harness) prepareCount() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.prepared
}
