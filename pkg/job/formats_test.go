package job

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture reads the "input" of a request file under testdata.
func fixture(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	return req.Input
}

// TestParseClientRequests: requests written the way worker-comfyui's and
// the original tool's clients write them parse unchanged once the
// endpoint names their format (RESPONSE_FORMAT) and version
// (COMFY_VERSION_NAME).
func TestParseClientRequests(t *testing.T) {
	wc := Defaults{VersionID: "demo", ResponseFormat: "worker-comfyui"}
	tests := []struct {
		name    string
		file    string
		d       Defaults
		check   func(t *testing.T, in *Input)
		wantErr string // a field and message, for requests the format refuses
	}{
		{name: "wc txt2img", file: "worker-comfyui/txt2img.json", d: wc, check: func(t *testing.T, in *Input) {
			if in.VersionID != "demo" || len(in.Workflow) != 2 || in.ResponseFormat != "worker-comfyui" || in.OutputMode != "base64" {
				t.Errorf("%+v", in)
			}
		}},
		{name: "wc images as data URIs and plain base64", file: "worker-comfyui/img2img.json", d: wc, check: func(t *testing.T, in *Input) {
			if len(in.Images) != 2 || in.Images[0].Name != "input_image_1.png" || string(in.Images[0].Data[1:4]) != "PNG" || string(in.Images[1].Data) != string(in.Images[0].Data) {
				t.Errorf("images %+v", in.Images)
			}
		}},
		{name: "wc input as a JSON string", file: "worker-comfyui/string-input.json", d: wc, check: func(t *testing.T, in *Input) {
			if len(in.Workflow) != 2 {
				t.Errorf("%+v", in)
			}
		}},
		{name: "wc unknown keys ignored, API key passed", file: "worker-comfyui/extra-keys.json", d: wc, check: func(t *testing.T, in *Input) {
			if !reflect.DeepEqual(in.Ignored, []string{"prompt", "seed"}) || in.ComfyOrgAPIKey != "comfyui-key-from-request" {
				t.Errorf("ignored %v, key %q", in.Ignored, in.ComfyOrgAPIKey)
			}
		}},
		{name: "wc uses S3 when the worker has it", file: "worker-comfyui/txt2img.json", d: Defaults{VersionID: "demo", ResponseFormat: "worker-comfyui", S3: true, GCS: true},
			check: func(t *testing.T, in *Input) {
				if in.OutputMode != "s3" {
					t.Errorf("output mode %s, want s3", in.OutputMode)
				}
			}},
		{name: "OUTPUT_MODE wins over the format's habit", file: "worker-comfyui/txt2img.json", d: Defaults{VersionID: "demo", ResponseFormat: "worker-comfyui", S3: true, OutputMode: "base64"},
			check: func(t *testing.T, in *Input) {
				if in.OutputMode != "base64" {
					t.Errorf("output mode %s", in.OutputMode)
				}
			}},
		{name: "wc request sent to a default-format endpoint: string refused", file: "worker-comfyui/string-input.json", d: Defaults{VersionID: "demo"},
			wantErr: ": the job input must be a JSON object"},
		{name: "wc request sent to a default-format endpoint: unknown key refused", file: "worker-comfyui/extra-keys.json", d: Defaults{VersionID: "demo"},
			wantErr: "prompt: unknown key"},
		{name: "original: string workflow, its ignored keys", file: "original/base64-string-workflow.json", d: Defaults{ResponseFormat: "original", GCS: true},
			check: func(t *testing.T, in *Input) {
				if in.VersionID != "demo" || len(in.Workflow) != 2 || in.OutputMode != "base64" || !reflect.DeepEqual(in.Ignored, []string{"requestId"}) {
					t.Errorf("%+v", in)
				}
			}},
		{name: "original: workflow_url wins over workflow, GCS by default", file: "original/url-inputs-gcs.json", d: Defaults{ResponseFormat: "original", GCS: true},
			check: func(t *testing.T, in *Input) {
				if in.WorkflowURL == "" || in.Workflow != nil || in.OutputMode != "gcs" || in.GCSBucket != "gs://my-outputs" || len(in.Images) != 1 || in.Images[0].URL == "" {
					t.Errorf("%+v", in)
				}
			}},
		{name: "original request in the default format: both workflows refused", file: "original/url-inputs-gcs.json", d: Defaults{GCS: true},
			wantErr: "workflow_url: give either"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ParseInput(fixture(t, tc.file), tc.d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, in)
		})
	}
}

// TestWorkerComfyUIInputErrors: the problems worker-comfyui checks are
// reported in its words (its clients may compare them); ours stay in
// Msg for the log.
func TestWorkerComfyUIInputErrors(t *testing.T) {
	d := Defaults{VersionID: "demo", ResponseFormat: "worker-comfyui"}
	for _, tc := range []struct {
		name, input, theirs string
		details             []string
	}{
		{"no input", `null`, "Please provide input", nil},
		{"string without JSON", `"not json"`, "Invalid JSON format in input", nil},
		{"no workflow", `{"images": []}`, "Missing 'workflow' parameter", nil},
		{"image without data", `{"workflow": ` + wf + `, "images": [{"name": "a.png"}]}`, "'images' must be a list of objects with 'name' and 'image' keys", nil},
		{"images not a list", `{"workflow": ` + wf + `, "images": "a.png"}`, "'images' must be a list of objects with 'name' and 'image' keys", nil},
		{"bad base64", `{"workflow": ` + wf + `, "images": [{"name": "a.png", "image": "@@@"}]}`, "Failed to upload one or more input images",
			[]string{"Error decoding base64 for a.png: not valid base64 (nor an https:// URL or gs:// URI)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInput(json.RawMessage(tc.input), d)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Theirs != tc.theirs || !reflect.DeepEqual(ie.TheirsDetails, tc.details) || ie.Format != "worker-comfyui" {
				t.Fatalf("got %#v, want theirs %q %v", err, tc.theirs, tc.details)
			}
			// The same input in the default format gets our message only.
			_, err = ParseInput(json.RawMessage(tc.input), Defaults{VersionID: "demo"})
			if !errors.As(err, &ie) || ie.Theirs != "" {
				t.Errorf("default format: %#v", err)
			}
		})
	}
}

// TestInputStrictness: the default format refuses repeated keys (as specs
// do) with the path of the second one; worker-comfyui's and the
// original's take the last, as Python's json does.
func TestInputStrictness(t *testing.T) {
	dupTop := `{"version_id": "v", "workflow": ` + wf + `, "timeout": 5, "timeout": 50}`
	dupNode := `{"version_id": "v", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "width": 9}}}}`
	dupID := `{"version_id": "v", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}, "1": {"class_type": "SaveImage", "inputs": {}}}}`
	for _, tc := range []struct {
		name, input, format, field string
	}{
		{"top-level", dupTop, "", "timeout"},
		{"node input", dupNode, "", "workflow.1.inputs.width"},
		{"node id", dupID, "", "workflow.1"},
		{"wc takes the last", dupTop, "worker-comfyui", ""},
		{"original takes the last", dupTop, "original", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ParseInput(json.RawMessage(tc.input), Defaults{ResponseFormat: tc.format})
			if tc.field == "" {
				if err != nil || in.Timeout.Seconds() != 50 {
					t.Fatalf("%+v %v", in, err)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != tc.field || !strings.Contains(ie.Msg, "twice") {
				t.Fatalf("got %v, want the duplicate at %s", err, tc.field)
			}
		})
	}
}

// TestInputErrorsHaveNoGoInternals: whatever the shape of a wrong input,
// the message speaks of JSON and of the keys, never of Go types.
func TestInputErrorsHaveNoGoInternals(t *testing.T) {
	for _, input := range []string{
		`[1, 2]`, `42`, `"{}"`,
		`{"version_id": ["v"], "workflow": {}}`,
		`{"version_id": "v", "workflow": [1, 2]}`,
		`{"version_id": "v", "workflow": 7}`,
		`{"version_id": "v", "workflow": "[1, 2]"}`,
		`{"version_id": "v", "workflow": "{not json"}`,
		`{"version_id": "v", "workflow": {"1": []}}`,
		`{"version_id": "v", "workflow": {"1": {"class_type": 5}}}`,
		`{"version_id": "v", "workflow": {"1": {"class_type": "X", "inputs": []}}}`,
		`{"version_id": "v", "workflow": ` + wf + `, "images": [1]}`,
		`{"version_id": "v", "workflow": ` + wf + `, "images": [{"name": 1, "image": "AAAA"}]}`,
		`{"version_id": "v", "workflow": ` + wf + `, "input_images": {"a.png": 3}}`,
		`{"version_id": "v", "workflow": ` + wf + `, "input_images": []}`,
		`{"version_id": "v", "workflow": ` + wf + `, "timeout": {}}`,
		`{"version_id": "v", "workflow": ` + wf + `, "response_format": 1}`,
		`{"version_id": "v", "workflow": ` + wf + `, "comfy_org_api_key": 1}`,
	} {
		for _, format := range []string{"", "worker-comfyui", "original"} {
			_, err := ParseInput(json.RawMessage(input), Defaults{ResponseFormat: format})
			if err == nil {
				t.Errorf("%s (%s): accepted", input, format)
				continue
			}
			msg := err.Error()
			var ie *InputError
			if errors.As(err, &ie) {
				msg += " " + ie.Theirs
			}
			for _, internal := range []string{"Go value", "Go struct", "map[", "json.", "unmarshal", "[]interface", "*string"} {
				if strings.Contains(msg, internal) {
					t.Errorf("%s (%s): %q shows %q", input, format, msg, internal)
				}
			}
		}
	}
}

// TestOriginalInputErrors: the original tool's words for the problems it
// reported, in its format only.
func TestOriginalInputErrors(t *testing.T) {
	for input, theirs := range map[string]string{
		`{"workflow": ` + wf + `}`: "version_id is required",
		`{"version_id": "v", "workflow": ` + wf + `, "output_mode": "ftp"}`: "Unknown output mode: ftp",
	} {
		_, err := ParseInput(json.RawMessage(input), Defaults{ResponseFormat: "original"})
		var ie *InputError
		if !errors.As(err, &ie) || ie.Theirs != theirs || ie.Format != "original" {
			t.Errorf("%s: %#v, want %q", input, err, theirs)
		}
		if _, err := ParseInput(json.RawMessage(input), Defaults{}); !errors.As(err, &ie) || ie.Theirs != "" {
			t.Errorf("%s in the default format: %#v", input, err)
		}
	}
}

func TestComfyOrgAPIKey(t *testing.T) {
	for _, tc := range []struct{ name, input, env, want string }{
		{"request", `"comfy_org_api_key": "req"`, "env", "req"},
		{"older name", `"api_key_comfy_org": "old"`, "", "old"},
		{"endpoint default", ``, "env", "env"},
		{"none", ``, "", ""},
	} {
		extra := ""
		if tc.input != "" {
			extra = ", " + tc.input
		}
		in, err := ParseInput(json.RawMessage(`{"version_id": "v", "workflow": `+wf+extra+`}`), Defaults{ComfyOrgAPIKey: tc.env})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := extraData(in)["api_key_comfy_org"].(string)
		if got != tc.want {
			t.Errorf("%s: extra_data key %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestFirstDuplicateKey(t *testing.T) {
	for doc, want := range map[string]string{
		`{"a": 1, "b": {"a": 2}}`:                          "",
		`{"a": 1, "a": 2}`:                                 "a",
		`{"x": [{"k": 1}, {"k": 1, "k": 2}]}`:              "x[1].k",
		`{"s": "a \" \\\\", "t": {"u\u0041": 1, "uA": 2}}`: "t.uA",
		`{"s": "{\"a\": 1, \"a\": 2}"}`:                    "", // inside a string
		`[{"a": [], "b": {}}, {"a": 1}]`:                   "",
		`{"a\\": 1, "a\\": 2}`:                             `a\`,
	} {
		if got := firstDuplicateKey([]byte(doc)); got != want {
			t.Errorf("firstDuplicateKey(%s) = %q, want %q", doc, got, want)
		}
	}
}
