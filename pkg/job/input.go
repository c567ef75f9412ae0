// Package job is the job handler: it validates a job's input, lazily
// realizes the version it asks for, keeps one warm ComfyUI per worker
// (switching only when the version changes), runs the workflow with the
// job's timeout, delivers every output and cleans up after itself. Every
// failure becomes one readable line plus structured details.
package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/asm/base64"

	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Input is a validated job input (RunPod's "input" object). It accepts the
// original tool's keys and worker-comfyui's, so existing clients work.
type Input struct {
	VersionID   string
	Workflow    comfy.Workflow
	WorkflowURL string
	// Images are the input files, in request order: decoded bytes, or a
	// URL to fetch.
	Images         []Image
	OutputMode     string
	GCSBucket      string
	GCSPrefix      string
	Timeout        time.Duration
	ResponseFormat string
	// ComfyOrgAPIKey is passed to ComfyUI as extra_data for API nodes.
	ComfyOrgAPIKey string
}

// Image is one input file for the workflow.
type Image struct {
	Name string
	Data []byte
	URL  string
}

// Defaults fill what a job leaves out.
type Defaults struct {
	VersionID  string // COMFY_VERSION_NAME
	OutputMode string // OUTPUT_MODE, default base64
	GCSBucket  string
	GCSPrefix  string
	Timeout    time.Duration
	MaxTimeout time.Duration
}

// InputError is a bad job input; Field names the offending key.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return "invalid input: " + e.Msg
	}
	return fmt.Sprintf("invalid input: %s: %s", e.Field, e.Msg)
}

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var knownKeys = map[string]bool{
	"version_id": true, "workflow": true, "workflow_url": true, "images": true, "input_images": true,
	"output_mode": true, "gcs_bucket": true, "gcs_prefix": true, "timeout": true, "response_format": true,
	"comfy_org_api_key": true, "api_key_comfy_org": true,
	// Accepted and ignored, as the original did: logging is configured
	// per worker, and the models directory is the operator's choice.
	"verbose": true, "models_dir": true,
}

// ParseInput validates raw job input. Each problem is reported with the
// field it concerns; the first one wins.
func ParseInput(raw json.RawMessage, d Defaults) (*Input, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, inputErr("", "the job input must be a JSON object with version_id and workflow")
	}
	var unknown []string
	for k := range m {
		if !knownKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, inputErr(unknown[0], "unknown key (known: version_id, workflow, workflow_url, images, input_images, output_mode, gcs_bucket, gcs_prefix, timeout, response_format)")
	}
	in := &Input{OutputMode: d.OutputMode, GCSBucket: d.GCSBucket, GCSPrefix: d.GCSPrefix, Timeout: d.Timeout}
	str := func(key string, dst *string) error {
		v, ok := m[key]
		if !ok || string(v) == "null" {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return inputErr(key, "want a string")
		}
		return nil
	}
	for key, dst := range map[string]*string{"version_id": &in.VersionID, "workflow_url": &in.WorkflowURL, "output_mode": &in.OutputMode,
		"gcs_bucket": &in.GCSBucket, "gcs_prefix": &in.GCSPrefix, "response_format": &in.ResponseFormat} {
		if err := str(key, dst); err != nil {
			return nil, err
		}
	}
	for _, key := range []string{"comfy_org_api_key", "api_key_comfy_org"} {
		if err := str(key, &in.ComfyOrgAPIKey); err != nil {
			return nil, err
		}
	}
	if in.VersionID == "" {
		in.VersionID = d.VersionID
	}
	switch {
	case in.VersionID == "":
		return nil, inputErr("version_id", "required (or set COMFY_VERSION_NAME on the endpoint)")
	case !spec.ValidID(in.VersionID):
		return nil, inputErr("version_id", "%q is not a version id: use 1–64 letters, digits, '.', '_' or '-'", in.VersionID)
	}
	if err := parseWorkflow(m, in); err != nil {
		return nil, err
	}
	if err := parseImages(m, in); err != nil {
		return nil, err
	}
	if in.OutputMode == "" {
		in.OutputMode = "base64"
	}
	switch in.OutputMode {
	case "base64", "gcs", "auto":
	default:
		return nil, inputErr("output_mode", "%q: use \"base64\", \"gcs\" or \"auto\"", in.OutputMode)
	}
	if !output.ValidFormat(in.ResponseFormat) {
		return nil, inputErr("response_format", "%q: use %q, %q or %q", in.ResponseFormat, output.FormatDefault, output.FormatOriginal, output.FormatWorkerComfyUI)
	}
	if v, ok := m["timeout"]; ok && string(v) != "null" {
		secs, err := strconv.ParseFloat(strings.Trim(string(v), `"`), 64)
		if err != nil || secs <= 0 {
			return nil, inputErr("timeout", "want a positive number of seconds, got %s", v)
		}
		in.Timeout = time.Duration(secs * float64(time.Second))
	}
	if d.MaxTimeout > 0 && in.Timeout > d.MaxTimeout {
		return nil, inputErr("timeout", "%s is over this endpoint's limit of %s", in.Timeout, d.MaxTimeout)
	}
	return in, nil
}

func parseWorkflow(m map[string]json.RawMessage, in *Input) error {
	wf, hasWF := m["workflow"]
	hasWF = hasWF && string(wf) != "null"
	switch {
	case hasWF && in.WorkflowURL != "":
		return inputErr("workflow_url", "give either workflow or workflow_url, not both")
	case in.WorkflowURL != "":
		u, err := url.Parse(in.WorkflowURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "gs") || u.Host == "" {
			return inputErr("workflow_url", "want an https:// URL or a gs:// URI")
		}
		return nil
	case !hasWF:
		return inputErr("workflow", "required: the workflow in ComfyUI's API format (or workflow_url)")
	}
	data := []byte(wf)
	if wf[0] == '"' { // a JSON string holding the workflow
		var s string
		if err := json.Unmarshal(wf, &s); err != nil {
			return inputErr("workflow", "want an object or a JSON string")
		}
		data = []byte(s)
	}
	w, err := comfy.ParseWorkflow(data)
	if err != nil {
		return inputErr("workflow", "%v", err)
	}
	in.Workflow = w
	return nil
}

func parseImages(m map[string]json.RawMessage, in *Input) error {
	seen := map[string]bool{}
	add := func(field, name, value string) error {
		if err := comfy.CheckInputName(name); err != nil {
			return inputErr(field, "%v", err)
		}
		if seen[name] {
			return inputErr(field, "input file %q is given twice", name)
		}
		seen[name] = true
		img := Image{Name: name}
		switch {
		case strings.HasPrefix(value, "https://") || strings.HasPrefix(value, "http://") || strings.HasPrefix(value, "gs://"):
			img.URL = value
		default:
			data, err := decodeBase64(value)
			if err != nil {
				return inputErr(field, "%q: %v", name, err)
			}
			img.Data = data
		}
		in.Images = append(in.Images, img)
		return nil
	}
	if v, ok := m["images"]; ok && string(v) != "null" {
		var list []struct {
			Name  string `json:"name"`
			Image string `json:"image"`
		}
		if err := json.Unmarshal(v, &list); err != nil {
			return inputErr("images", "want a list of {\"name\": \"x.png\", \"image\": \"<base64, data URI, https:// URL or gs:// URI>\"}")
		}
		for i, e := range list {
			if err := add(fmt.Sprintf("images[%d]", i), e.Name, e.Image); err != nil {
				return err
			}
		}
	}
	if v, ok := m["input_images"]; ok && string(v) != "null" {
		var obj map[string]string
		if err := json.Unmarshal(v, &obj); err != nil {
			return inputErr("input_images", "want an object {\"name.png\": \"https://…\"}")
		}
		names := make([]string, 0, len(obj))
		for k := range obj {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if err := add("input_images."+k, k, obj[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeBase64 accepts plain base64 (standard or URL alphabet, padded or
// not) and data: URIs.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		comma := strings.IndexByte(s, ',')
		if comma < 0 || !strings.HasSuffix(s[:comma], ";base64") {
			return nil, fmt.Errorf("a data URI must be base64: data:<type>;base64,<data>")
		}
		s = s[comma+1:]
	}
	if strings.ContainsAny(s, "\n\r ") {
		s = strings.Map(func(r rune) rune {
			if r == '\n' || r == '\r' || r == ' ' {
				return -1
			}
			return r
		}, s)
	}
	if s == "" {
		return nil, fmt.Errorf("empty image")
	}
	// SIMD decoding: a multi-megabyte image decodes in a fraction of a
	// millisecond instead of several.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("not valid base64 (nor an https:// URL or gs:// URI)")
}
