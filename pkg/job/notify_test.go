package job

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/output"
)

// TestNotifyReachesTheNextJobOnce: a warning about the worker itself (it
// runs without its network volume) is in the next job's result, a failed
// one's details included, and in no later one.
func TestNotifyReachesTheNextJobOnce(t *testing.T) {
	hs := newHarness(t, nil)
	const warning = "no network volume at /runpod-volume"
	warnings := func(out Outcome) []string {
		t.Helper()
		if out.Failure != nil {
			w, _ := out.Failure.Details["warnings"].([]string)
			return w
		}
		var res output.Result
		if err := json.Unmarshal(out.Output.(*output.Rendered).Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		return res.Warnings
	}
	hs.h.Notify("")
	hs.h.Notify(warning)
	if got := warnings(hs.run(`{"version_id": "v1", "workflow": ` + okWorkflow + `}`)); len(got) != 1 || got[0] != warning {
		t.Errorf("first job's warnings: %q", got)
	}
	if got := warnings(hs.run(`{"version_id": "v1", "workflow": ` + okWorkflow + `}`)); len(got) != 0 {
		t.Errorf("second job's warnings: %q", got)
	}
	hs.h.Notify(warning)
	out := hs.run(`{"version_id": "nope", "workflow": ` + okWorkflow + `}`)
	if got := warnings(out); out.Failure == nil || len(got) != 1 || !strings.Contains(got[0], "network volume") {
		t.Errorf("a failed job's details: %+v", out.Failure)
	}
}
