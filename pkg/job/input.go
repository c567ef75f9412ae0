// Package job is the job handler: it validates a job's input, lazily
// realizes the version it asks for, keeps one warm ComfyUI per worker
// (switching only when the version changes), runs the workflow with the
// job's timeout, delivers every output and cleans up after itself. Every
// failure becomes one readable line plus structured details.
package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

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
	S3Bucket       string
	S3Prefix       string
	Timeout        time.Duration
	ResponseFormat string
	// ComfyOrgAPIKey is passed to ComfyUI as extra_data for API nodes.
	ComfyOrgAPIKey string
	// Ignored are the keys the job's format let through unread
	// (worker-comfyui's and the original's rules), for a debug log.
	Ignored []string
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
	OutputMode string // OUTPUT_MODE
	GCSBucket  string
	GCSPrefix  string
	Timeout    time.Duration
	MaxTimeout time.Duration
	// ResponseFormat is the endpoint's result shape (RESPONSE_FORMAT); a
	// job's "response_format" wins.
	ResponseFormat string
	// ComfyOrgAPIKey is COMFY_ORG_API_KEY, for jobs that bring none.
	ComfyOrgAPIKey string
	// GCS and S3 say which stores the worker has (the Handler sets them):
	// a worker-comfyui job uses S3 when there is one, as worker-comfyui
	// does, and an original job GCS, as the original did.
	GCS, S3 bool
}

// InputError is a bad job input; Field names the offending key.
type InputError struct {
	Field string
	Msg   string
	// Format is the response format the job asked for, so the failure
	// can be shaped for its client.
	Format string
	// Theirs is how that format's own tool words the problem (e.g.
	// worker-comfyui's "Missing 'workflow' parameter", the original's
	// "version_id is required"), with its details.
	Theirs        string
	TheirsDetails []string
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
	"output_mode": true, "gcs_bucket": true, "gcs_prefix": true, "s3_bucket": true, "s3_prefix": true,
	"timeout": true, "response_format": true, "comfy_org_api_key": true, "api_key_comfy_org": true,
	// Accepted and ignored, as the original did: logging is configured
	// per worker, and the models directory is the operator's choice.
	"verbose": true, "models_dir": true,
}

// Messages worker-comfyui gives for the input problems it checks; its
// clients may compare them.
const (
	wcNoInput     = "Please provide input"
	wcBadJSON     = "Invalid JSON format in input"
	wcNoWorkflow  = "Missing 'workflow' parameter"
	wcBadImages   = "'images' must be a list of objects with 'name' and 'image' keys"
	wcUploadFails = "Failed to upload one or more input images"
)

// ParseInput validates raw job input. Each problem is reported with the
// field it concerns; the first one wins. The default format is strict:
// unknown and repeated keys are refused. The worker-comfyui and original
// formats follow their tools' rules instead: unknown keys are ignored,
// the last of repeated keys wins, and worker-comfyui's input may be a
// JSON string holding the object.
func ParseInput(raw json.RawMessage, d Defaults) (*Input, error) {
	p := &inputParser{format: d.ResponseFormat}
	in, err := p.parse(raw, d)
	var ie *InputError
	if errors.As(err, &ie) {
		ie.Format = p.format
	}
	return in, err
}

type inputParser struct {
	format string
}

func (p *inputParser) lenient() bool {
	return p.format == output.FormatWorkerComfyUI || p.format == output.FormatOriginal
}

// fail is an input error with worker-comfyui's words for it when the job
// is worker-comfyui's.
func (p *inputParser) fail(theirs string, details []string, field, format string, args ...any) error {
	e := &InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
	if p.format == output.FormatWorkerComfyUI {
		e.Theirs, e.TheirsDetails = theirs, details
	}
	return e
}

// failOriginal is an input error with the original tool's words for it
// when the job is in its format.
func (p *inputParser) failOriginal(theirs, field, format string, args ...any) error {
	e := &InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
	if p.format == output.FormatOriginal {
		e.Theirs = theirs
	}
	return e
}

const notAnObject = "the job input must be a JSON object with version_id and workflow"

func (p *inputParser) parse(raw json.RawMessage, d Defaults) (*Input, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, p.fail(wcNoInput, nil, "", notAnObject)
	}
	fromString := false
	if raw[0] == '"' {
		// worker-comfyui accepts the input object sent as a JSON string.
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || !json.Valid([]byte(s)) {
			return nil, p.fail(wcBadJSON, nil, "", "the job input is a string that does not hold JSON: send the input as a JSON object")
		}
		raw, fromString = bytes.TrimSpace([]byte(s)), true
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, p.fail(wcBadJSON, nil, "", notAnObject)
	}
	if v, ok := m["response_format"]; ok && string(v) != "null" {
		if json.Unmarshal(v, &p.format) != nil {
			return nil, inputErr("response_format", "want a string: %q, %q or %q", output.FormatDefault, output.FormatOriginal, output.FormatWorkerComfyUI)
		}
	}
	if !output.ValidFormat(p.format) {
		f := p.format
		p.format = d.ResponseFormat
		return nil, inputErr("response_format", "%q: use %q, %q or %q", f, output.FormatDefault, output.FormatOriginal, output.FormatWorkerComfyUI)
	}
	if fromString && p.format != output.FormatWorkerComfyUI {
		return nil, inputErr("", "%s (a JSON string holding one is accepted only with response_format %q)", notAnObject, output.FormatWorkerComfyUI)
	}
	in := &Input{GCSBucket: d.GCSBucket, GCSPrefix: d.GCSPrefix, Timeout: d.Timeout, ResponseFormat: p.format}
	for k := range m {
		if !knownKeys[k] {
			in.Ignored = append(in.Ignored, k)
		}
	}
	sort.Strings(in.Ignored)
	if !p.lenient() {
		if dup := firstDuplicateKey(raw); dup != "" {
			return nil, inputErr(dup, "the key is given twice: give each key once")
		}
		if len(in.Ignored) > 0 {
			return nil, inputErr(in.Ignored[0], "unknown key (known: version_id, workflow, workflow_url, images, input_images, output_mode, gcs_bucket, gcs_prefix, s3_bucket, s3_prefix, timeout, response_format, comfy_org_api_key)")
		}
	}
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
	for _, f := range []struct {
		key string
		dst *string
	}{{"version_id", &in.VersionID}, {"workflow_url", &in.WorkflowURL}, {"output_mode", &in.OutputMode},
		{"gcs_bucket", &in.GCSBucket}, {"gcs_prefix", &in.GCSPrefix}, {"s3_bucket", &in.S3Bucket}, {"s3_prefix", &in.S3Prefix},
		{"api_key_comfy_org", &in.ComfyOrgAPIKey}, {"comfy_org_api_key", &in.ComfyOrgAPIKey}} {
		if err := str(f.key, f.dst); err != nil {
			return nil, err
		}
	}
	if in.ComfyOrgAPIKey == "" {
		in.ComfyOrgAPIKey = d.ComfyOrgAPIKey
	}
	if in.VersionID == "" {
		in.VersionID = d.VersionID
	}
	switch {
	case in.VersionID == "":
		return nil, p.failOriginal("version_id is required", "version_id", "required (or set COMFY_VERSION_NAME on the endpoint)")
	case !spec.ValidID(in.VersionID):
		return nil, inputErr("version_id", "%q is not a version id: use 1–64 letters, digits, '.', '_' or '-'", in.VersionID)
	}
	if err := p.parseWorkflow(m, in); err != nil {
		return nil, err
	}
	if err := p.parseImages(m, in); err != nil {
		return nil, err
	}
	if err := p.outputMode(in, d); err != nil {
		return nil, err
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

// outputMode picks the job's output mode: its own, the endpoint's, else
// what its format's tool did with the stores this worker has.
func (p *inputParser) outputMode(in *Input, d Defaults) error {
	if in.OutputMode == "" {
		in.OutputMode = d.OutputMode
	}
	if in.OutputMode == "" {
		switch {
		case p.format == output.FormatWorkerComfyUI && d.S3:
			in.OutputMode = output.ModeS3
		case p.format == output.FormatOriginal && d.GCS:
			in.OutputMode = output.ModeGCS
		default:
			in.OutputMode = output.ModeBase64
		}
	}
	switch in.OutputMode {
	case output.ModeBase64, output.ModeGCS, output.ModeS3, output.ModeAuto:
		return nil
	}
	return p.failOriginal("Unknown output mode: "+in.OutputMode, "output_mode", "%q: use \"base64\", \"gcs\", \"s3\" or \"auto\"", in.OutputMode)
}
