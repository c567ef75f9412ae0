package comfy

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/comfy/comfytest"
)

// TestRunPartialOnError: with PartialOnError, a node raising still returns
// the files written before it (from the failed prompt's history, socket
// or not), next to the *ExecutionError; without it, nothing.
func TestRunPartialOnError(t *testing.T) {
	wf := `{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "before"}},
 "3": {"class_type": "FakeRaise", "inputs": {"image": ["1", 0], "message": "boom"}},
 "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "never"}}
}`
	for _, tc := range []struct {
		name    string
		beh     comfytest.Behavior
		partial bool
	}{
		{"socket", comfytest.Behavior{}, true},
		{"history only", comfytest.Behavior{SilentSocket: true}, true},
		{"history written late", comfytest.Behavior{HistoryDelay: 100 * time.Millisecond}, true},
		{"not asked", comfytest.Behavior{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := comfytest.Start(t, comfytest.Options{Behavior: tc.beh})
			c := newTestClient(t, srv.URL, nil)
			res, err := c.Run(t.Context(), mustWorkflow(t, wf), RunOptions{OutputDir: t.TempDir(), PartialOnError: tc.partial, Timeout: 10 * time.Second})
			var ee *ExecutionError
			if !errors.As(err, &ee) || ee.NodeID != "3" {
				t.Fatalf("err = %v, want node 3's execution error", err)
			}
			if !tc.partial {
				if res != nil {
					t.Fatalf("result %+v without PartialOnError", res)
				}
				return
			}
			if res == nil || len(res.Outputs) != 1 || res.Outputs[0].NodeID != "2" {
				t.Fatalf("partial result %+v, want node 2's file", res)
			}
			if st, err := os.Stat(res.Outputs[0].Path); err != nil || st.Size() == 0 || res.Outputs[0].SHA256 == "" {
				t.Errorf("partial output not downloaded: %+v %v", res.Outputs[0], err)
			}
		})
	}
}
