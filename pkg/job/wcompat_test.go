package job

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/runpod-comfy/worker/pkg/output"
)

// wcResult is worker-comfyui's success shape.
type wcResult struct {
	Images []struct {
		Filename string `json:"filename"`
		Type     string `json:"type"`
		Data     string `json:"data"`
	} `json:"images"`
	Videos []json.RawMessage `json:"videos"`
	Errors []string          `json:"errors"`
	Status string            `json:"status"`
}

func decodeWC(t *testing.T, out Outcome) (wcResult, map[string]any) {
	t.Helper()
	var keys map[string]any
	var r wcResult
	b := out.Output.(*output.Rendered).Bytes()
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &r)
	return r, keys
}

// TestWorkerComfyUIJobs runs worker-comfyui clients' requests, unchanged,
// on an endpoint whose RESPONSE_FORMAT is worker-comfyui, through a real
// (fake) ComfyUI, and checks each result and failure key by key.
func TestWorkerComfyUIJobs(t *testing.T) {
	hs := newHarnessWith(t, nil, func(c *Config) {
		c.Defaults.VersionID, c.Defaults.ResponseFormat = "v1", output.FormatWorkerComfyUI
	})
	const (
		empty = `"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}`
		save  = `"2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ok"}}`
	)
	wfOf := func(nodes ...string) string { return `{"workflow": {` + strings.Join(nodes, ", ") + `}}` }
	raise := `"3": {"class_type": "FakeRaise", "inputs": {"message": "boom", "image": ["1", 0]}}`
	tests := []struct {
		name  string
		input string
		// success
		images []string // file name prefixes, in order
		keys   []string // the result's keys
		errors []string
		status string
		// failure
		failMsg string
		details []string // nil: the failure has no output at all
	}{
		{name: "their txt2img request", input: string(fixture(t, "worker-comfyui/txt2img.json")),
			images: []string{"ComfyUI_"}, keys: []string{"images"}},
		{name: "input images", input: string(fixture(t, "worker-comfyui/img2img.json")),
			images: []string{"inverted_"}, keys: []string{"images"}},
		{name: "input as a JSON string", input: string(fixture(t, "worker-comfyui/string-input.json")),
			images: []string{"ComfyUI_"}, keys: []string{"images"}},
		{name: "unknown keys ignored", input: string(fixture(t, "worker-comfyui/extra-keys.json")),
			images: []string{"ComfyUI_"}, keys: []string{"images"}},
		{name: "only images: GIF, audio and previews left out", input: wfOf(empty, save,
			`"3": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0], "frame_rate": 8, "filename_prefix": "anim"}}`,
			`"4": {"class_type": "FakeAudio", "inputs": {"seconds": 1}}`,
			`"5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "snd"}}`,
			`"6": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}`),
			images: []string{"ok_"}, keys: []string{"images"}},
		// Its own image (color 7): a cached node's deleted file cannot be
		// returned from a failed prompt.
		{name: "partial success: images saved before a node failed", input: wfOf(strings.Replace(empty, `"color": 0`, `"color": 7`, 1), save, raise,
			`"4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "never"}}`),
			images: []string{"ok_"}, keys: []string{"errors", "images"},
			errors: []string{"Workflow execution error: Node Type: FakeRaise, Node ID: 3, Message: boom"}},
		{name: "a node failed before any image", input: wfOf(empty, raise,
			`"4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "never"}}`),
			failMsg: "Job processing failed", details: []string{"Workflow execution error: Node Type: FakeRaise, Node ID: 3, Message: boom"}},
		{name: "no image, nothing wrong", input: wfOf(empty, `"2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}`),
			keys: []string{"images", "status"}, status: "success_no_images"},
		{name: "no image plus a warning fails", input: wfOf(empty, `"2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}`,
			`"3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}`),
			failMsg: "Job processing failed", details: []string{"node 3 (SaveImage) was skipped: "}},
		{name: "their validation message", input: `{"images": []}`, failMsg: "Missing 'workflow' parameter"},
		{name: "their JSON-string message", input: `"{oops"`, failMsg: "Invalid JSON format in input"},
		{name: "other failures keep our line", input: `{"workflow": {"1": {"class_type": "NoSuchNode", "inputs": {}}}}`,
			failMsg: "ComfyUI rejected the workflow"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := hs.run(tc.input)
			if tc.failMsg != "" {
				f := out.Failure
				if f == nil || !strings.HasPrefix(f.Message, tc.failMsg) {
					t.Fatalf("failure %+v, want %q", f, tc.failMsg)
				}
				if tc.details == nil {
					if f.Output() != nil {
						t.Errorf("output %v, want none", f.Output())
					}
					return
				}
				got, _ := f.Output().(map[string]any)["details"].([]string)
				if len(got) != len(tc.details) || len(f.Details) != 1 {
					t.Fatalf("output %v, want only details %q", f.Details, tc.details)
				}
				for i := range got {
					if !strings.HasPrefix(got[i], tc.details[i]) {
						t.Errorf("details[%d] = %q, want %q…", i, got[i], tc.details[i])
					}
				}
				return
			}
			if out.Failure != nil {
				t.Fatalf("failed: %+v", out.Failure)
			}
			r, keys := decodeWC(t, out)
			var gotKeys []string
			for k := range keys {
				gotKeys = append(gotKeys, k)
			}
			if !sameSet(gotKeys, tc.keys) || r.Status != tc.status || !reflect.DeepEqual(r.Errors, tc.errors) || len(r.Images) != len(tc.images) {
				t.Fatalf("result keys %v status %q errors %q, %d images; want %v %q %q %d", gotKeys, r.Status, r.Errors, len(r.Images), tc.keys, tc.status, tc.errors, len(tc.images))
			}
			for i, img := range r.Images {
				if !strings.HasPrefix(img.Filename, tc.images[i]) || img.Type != "base64" || !strings.HasPrefix(img.Data, "iVBORw0KGgo") {
					t.Errorf("image %d: %s %s %.12s", i, img.Filename, img.Type, img.Data)
				}
			}
		})
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// recordingStore is a Deliverer that keeps what it was given.
type recordingStore struct {
	mu       sync.Mutex
	checkErr error
	files    [][]output.Local
	inputs   []*Input
}

func (s *recordingStore) Check(in *Input) error { return s.checkErr }

func (s *recordingStore) Deliver(ctx context.Context, jobID string, in *Input, files []output.Local) ([]output.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = append(s.files, files)
	s.inputs = append(s.inputs, in)
	var out []output.File
	for _, f := range files {
		out = append(out, output.File{NodeID: f.NodeID, Kind: f.Kind, Filename: f.Filename, Type: "output",
			URL: "https://s3.example/b/" + f.Filename, S3Path: "s3://b/" + f.Filename, SignedURL: "https://s3.example/b/" + f.Filename + "?sig"})
	}
	return out, nil
}

// TestOutputStores: a worker-comfyui job goes to S3 when the worker has
// it, as worker-comfyui does, and only the files its result lists are
// uploaded; a job asking for a store the worker lacks, or a bucket the
// store refuses, fails at the input stage, before its version is
// realized (issue 14: no GPU time is spent on a job that cannot deliver).
func TestOutputStores(t *testing.T) {
	s3 := &recordingStore{}
	hs := newHarnessWith(t, nil, func(c *Config) { c.S3 = s3 })
	wcJob := `{"version_id": "v1", "response_format": "worker-comfyui", "workflow": {
	  "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
	  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "up"}},
	  "3": {"class_type": "FakeAudio", "inputs": {"seconds": 1}},
	  "4": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0], "filename_prefix": "snd"}}}}`
	out := hs.run(wcJob)
	if out.Failure != nil {
		t.Fatal(out.Failure)
	}
	r, _ := decodeWC(t, out)
	if len(r.Images) != 1 || r.Images[0].Type != "s3_url" || !strings.HasSuffix(r.Images[0].Data, "?sig") {
		t.Fatalf("result %+v", r)
	}
	if len(s3.files) != 1 || len(s3.files[0]) != 1 || s3.inputs[0].OutputMode != "s3" {
		t.Fatalf("uploaded %v, want the image only", s3.files)
	}

	for _, tc := range []struct {
		name, input, field, msg string
		checkErr                error
	}{
		{"gcs without GCS", `{"version_id": "v1", "output_mode": "gcs", "workflow": ` + okWorkflow + `}`, "output_mode", "GCS delivery is not configured", nil},
		{"auto is fine without GCS", `{"version_id": "v1", "output_mode": "auto", "workflow": ` + okWorkflow + `}`, "", "", nil},
		{"a bucket the store refuses", `{"version_id": "v1", "output_mode": "s3", "s3_bucket": "Bad_Bucket", "workflow": ` + okWorkflow + `}`,
			"s3_bucket", "invalid S3 bucket name", errors.New(`invalid S3 bucket name "Bad_Bucket"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s3.checkErr = tc.checkErr
			before := hs.prepared
			out := hs.run(tc.input)
			if tc.field == "" {
				if out.Failure != nil {
					t.Fatal(out.Failure)
				}
				return
			}
			f := out.Failure
			if f == nil || f.Type != ErrInput || f.Details["stage"] != "input" || f.Details["field"] != tc.field || !strings.Contains(f.Message, tc.msg) {
				t.Fatalf("failure %+v, want an input-stage error on %s", f, tc.field)
			}
			if hs.prepared != before {
				t.Error("the version was prepared for a job that could not deliver")
			}
		})
	}
}

// TestOriginalJobs: the original tool's clients get its keys and its
// error lines.
func TestOriginalJobs(t *testing.T) {
	hs := newHarnessWith(t, nil, func(c *Config) { c.Defaults.ResponseFormat = output.FormatOriginal })
	out := hs.run(`{"version_id": "v1", "workflow": ` + okWorkflow + `, "verbose": true, "requestId": "r-1"}`)
	if out.Failure != nil {
		t.Fatal(out.Failure)
	}
	var got map[string]any
	json.Unmarshal(out.Output.(*output.Rendered).Bytes(), &got)
	if len(got) != 5 || got["extension"] != ".png" || got["output_mode"] != "base64" || !strings.HasPrefix(got["base64"].(string), "iVBORw0KGgo") {
		t.Errorf("result %v", got)
	}
	for input, want := range map[string]string{
		`{"workflow": ` + okWorkflow + `}`: "version_id is required",
		`{"version_id": "v1", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
		  "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}}`: "Workflow completed but produced no output artifacts",
	} {
		out := hs.run(input)
		if out.Failure == nil || out.Failure.Message != want || out.Failure.Details["error_type"] == nil {
			t.Errorf("failure %+v, want %q with our details", out.Failure, want)
		}
	}
}
