package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

// TestVolumeWait: a worker whose cache and builds roots are set outside
// the volume does not wait for it; one that needs a volume that never comes
// runs on the container disk after the wait, says so once in its log and
// in the first job's result, and keeps taking jobs instead of exiting.
func TestVolumeWait(t *testing.T) {
	for _, tc := range []struct {
		name     string
		explicit bool // COMFY_CACHE_ROOT and COMFY_BUILDS_ROOT set outside the volume
		maxStart time.Duration
		warns    bool
	}{
		{"roots outside the volume", true, 1500 * time.Millisecond, false},
		{"no volume", false, 10 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			rp := runpodtest.New(runpodtest.Options{})
			t.Cleanup(rp.Close)
			for k, v := range rp.Env() {
				e.vars[k] = v
			}
			e.vars["RUNPOD_VOLUME_WAIT"] = "60"
			if !tc.explicit {
				e.vars["RUNPOD_VOLUME_WAIT"] = "1"
				delete(e.vars, "COMFY_CACHE_ROOT")
				delete(e.vars, "COMFY_BUILDS_ROOT")
				e.vars["XDG_CACHE_HOME"] = filepath.Join(e.dir, "container-disk")
			}
			e.vars["COMFY_SCRATCH_DIR"] = filepath.Join(e.dir, "scratch")
			workflow := map[string]any{"1": map[string]any{"class_type": "SaveImage", "inputs": map[string]any{}}}
			rp.AddJobs(runpodtest.Job{ID: "j1", Input: map[string]any{"version_id": "nope", "workflow": workflow}},
				runpodtest.Job{ID: "j2", Input: map[string]any{"version_id": "nope", "workflow": workflow}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			var errb syncBuf
			start := time.Now()
			go func() { done <- run(ctx, nil, strings.NewReader(""), &bytes.Buffer{}, &errb, e.getenv) }()
			wctx, wcancel := context.WithTimeout(context.Background(), tc.maxStart+20*time.Second)
			defer wcancel()
			if err := rp.Wait(wctx, func() bool { return len(rp.Takes()) > 0 }); err != nil {
				cancel()
				t.Fatalf("no job taken: %v\n%s", err, errb.String())
			}
			if el := time.Since(start); el > tc.maxStart {
				t.Errorf("the first job was taken after %v, want at most %v", el, tc.maxStart)
			}
			if err := rp.Wait(wctx, func() bool { return len(rp.Results("j1")) > 0 && len(rp.Results("j2")) > 0 }); err != nil {
				cancel()
				t.Fatalf("jobs not answered: %v\n%s", err, errb.String())
			}
			cancel()
			if code := <-done; code != exitOK {
				t.Errorf("exit %d:\n%s", code, errb.String())
			}
			first, second := string(rp.Results("j1")[0].Output), string(rp.Results("j2")[0].Output)
			if got := strings.Contains(first, "container disk"); got != tc.warns {
				t.Errorf("first job's result warns of the missing volume: %v, want %v:\n%s", got, tc.warns, first)
			}
			if strings.Contains(second, "container disk") {
				t.Errorf("the second job warns again:\n%s", second)
			}
			if n := strings.Count(errb.String(), "no network volume at"); n != map[bool]int{true: 1, false: 0}[tc.warns] {
				t.Errorf("the log says %d times that the volume is missing:\n%s", n, errb.String())
			}
			if tc.explicit && strings.Contains(errb.String(), "waiting for the network volume") {
				t.Error("waited for a volume nothing lives on")
			}
		})
	}
}
