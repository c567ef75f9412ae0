package output

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Result formats a client can ask for with "response_format".
const (
	// FormatDefault is this worker's result: every output with metadata.
	FormatDefault = "default"
	// FormatOriginal is the original tool's single-output shape:
	// {version_id, output_mode, base64|url+gcs_path, size, extension}.
	FormatOriginal = "original"
	// FormatWorkerComfyUI is RunPod worker-comfyui 5.x's shape:
	// {images: [{filename, type: "base64"|"s3_url", data}]}.
	FormatWorkerComfyUI = "worker-comfyui"
)

// ValidFormat reports whether f names a result format ("" is the default).
func ValidFormat(f string) bool {
	switch f {
	case "", FormatDefault, FormatOriginal, FormatWorkerComfyUI:
		return true
	}
	return false
}

// Result is a successful job's result in the default format.
type Result struct {
	VersionID  string             `json:"version_id"`
	OutputMode string             `json:"output_mode"`
	PromptID   string             `json:"prompt_id,omitempty"`
	Outputs    []File             `json:"outputs"`
	Texts      []Text             `json:"texts,omitempty"`
	Timings    map[string]float64 `json:"timings_ms,omitempty"`
	// NodeTimings is each node's execution time, by node id.
	NodeTimings map[string]float64 `json:"node_timings_ms,omitempty"`
	Warnings    []string           `json:"warnings,omitempty"`
}

// Text is a string a node showed instead of writing a file (a caption,
// a prompt, a number as text).
type Text struct {
	NodeID string `json:"node_id"`
	Kind   string `json:"kind"`
	Text   string `json:"text"`
}

// Shape renders r in the requested format.
func Shape(format string, r Result) (any, error) {
	switch format {
	case "", FormatDefault:
		if r.Outputs == nil {
			r.Outputs = []File{}
		}
		return r, nil
	case FormatOriginal:
		return original(r)
	case FormatWorkerComfyUI:
		return workerComfyUI(r), nil
	}
	return nil, fmt.Errorf("unknown response_format %q: use %q, %q or %q", format, FormatDefault, FormatOriginal, FormatWorkerComfyUI)
}

// original renders the first non-temp output the way the original tool
// returned its (single) output. Its clients read one file; the others are
// listed in the default format only.
func original(r Result) (map[string]any, error) {
	var f *File
	for i := range r.Outputs {
		if r.Outputs[i].Type != "temp" {
			f = &r.Outputs[i]
			break
		}
	}
	if f == nil {
		return nil, fmt.Errorf("the workflow produced no output files")
	}
	m := map[string]any{
		"version_id":  r.VersionID,
		"output_mode": r.OutputMode,
		"size":        f.Size,
		"extension":   strings.ToLower(filepath.Ext(f.Filename)),
	}
	if f.Base64 != nil {
		m["base64"] = f.Base64
	} else if r.OutputMode == "base64" {
		m["base64"] = ""
	} else {
		m["url"], m["gcs_path"] = f.URL, f.GCSPath
		if f.SignedURL != "" {
			m["signed_url"] = f.SignedURL
		}
	}
	return m, nil
}

type wcImage struct {
	Filename string `json:"filename"`
	Type     string `json:"type"`
	Data     any    `json:"data"` // *Blob or a URL
}

// workerComfyUI renders worker-comfyui's images list; URLs use its
// "s3_url" type name, which its clients test for.
func workerComfyUI(r Result) map[string]any {
	images := []wcImage{}
	for _, f := range r.Outputs {
		if f.Type == "temp" {
			continue
		}
		if f.Base64 != nil {
			images = append(images, wcImage{Filename: f.Filename, Type: "base64", Data: f.Base64})
		} else {
			url := f.SignedURL
			if url == "" {
				url = f.URL
			}
			images = append(images, wcImage{Filename: f.Filename, Type: "s3_url", Data: url})
		}
	}
	m := map[string]any{"images": images}
	if len(images) == 0 {
		m["status"] = "success_no_images"
	}
	if len(r.Warnings) > 0 {
		m["errors"] = r.Warnings
	}
	return m
}
