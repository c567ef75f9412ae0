package output

import (
	"errors"
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
	// {images: [{filename, type: "base64"|"s3_url", data}], videos, errors}.
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
	// NoOutputs is set when ComfyUI's history listed no output at all (as
	// opposed to outputs that are not files).
	NoOutputs bool `json:"-"`
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
		return workerComfyUI(r)
	}
	return nil, fmt.Errorf("unknown response_format %q: use %q, %q or %q", format, FormatDefault, FormatOriginal, FormatWorkerComfyUI)
}

// originalKinds are the history keys the original tool collected files
// from; it skipped every other key.
var originalKinds = map[string]bool{"images": true, "videos": true, "gifs": true, "video": true, "audio": true}

// ErrNoArtifacts is the original tool's failure for a workflow that wrote
// no file, in its words.
var ErrNoArtifacts = errors.New("Workflow completed but produced no output artifacts")

// original renders the first output the original tool would have
// collected (not a preview, under one of its keys) in its keys. The
// original concatenated every file into one blob; its clients read one
// file, and the others are listed in the default format only.
func original(r Result) (map[string]any, error) {
	var f *File
	for i := range r.Outputs {
		if r.Outputs[i].Type != "temp" && originalKinds[r.Outputs[i].Kind] {
			f = &r.Outputs[i]
			break
		}
	}
	if f == nil {
		return nil, ErrNoArtifacts
	}
	m := map[string]any{
		"version_id":  r.VersionID,
		"output_mode": r.OutputMode,
		"size":        f.Size,
		"extension":   strings.ToLower(filepath.Ext(f.Filename)),
	}
	switch {
	case f.Base64 != nil:
		m["base64"] = f.Base64
	case r.OutputMode == ModeBase64:
		m["base64"] = ""
	case f.S3Path != "":
		m["url"], m["s3_path"] = f.URL, f.S3Path
	default:
		m["url"], m["gcs_path"] = f.URL, f.GCSPath
	}
	if f.SignedURL != "" {
		m["signed_url"] = f.SignedURL
	}
	return m, nil
}

// WCFailure is a result worker-comfyui reports as a failed job:
// {"error": Error, "details": Details}.
type WCFailure struct {
	Message string
	Details []string
}

func (e *WCFailure) Error() string { return e.Message }

// WCJobFailed is worker-comfyui's error line when a job wrote nothing it
// returns and something went wrong; the reasons are in the details.
const WCJobFailed = "Job processing failed"

// WCSection is where worker-comfyui's result lists an output file:
// "images" for the images of the history's "images" key, "videos" for a
// video file under any key, "" for what it leaves out (previews, audio,
// GIFs and other files, texts).
func WCSection(kind, filename, typ string) string {
	if typ == "temp" {
		return ""
	}
	ct := ContentType(filename)
	switch {
	case strings.HasPrefix(ct, "video/"):
		return "videos"
	case kind == "images" && !strings.HasPrefix(ct, "audio/"):
		return "images"
	}
	return ""
}

type wcImage struct {
	Filename string `json:"filename"`
	Type     string `json:"type"`
	Data     any    `json:"data"` // *Blob or a URL
}

// workerComfyUI renders worker-comfyui's result: images (and videos, as
// its newer releases list them) with their content or URL, warnings as
// "errors". With nothing to return it succeeds only when nothing went
// wrong, as worker-comfyui does.
func workerComfyUI(r Result) (map[string]any, error) {
	images, videos := []wcImage{}, []wcImage{}
	for _, f := range r.Outputs {
		sec := WCSection(f.Kind, f.Filename, f.Type)
		if sec == "" {
			continue
		}
		e := wcImage{Filename: f.Filename, Type: "base64", Data: f.Base64}
		if f.Base64 == nil {
			url := f.SignedURL
			if url == "" {
				url = f.URL
			}
			e.Type, e.Data = "s3_url", url
		}
		if sec == "images" {
			images = append(images, e)
		} else {
			videos = append(videos, e)
		}
	}
	if len(images) == 0 && len(videos) == 0 {
		switch {
		case len(r.Warnings) > 0:
			return nil, &WCFailure{Message: WCJobFailed, Details: r.Warnings}
		case r.NoOutputs:
			return nil, &WCFailure{Message: WCJobFailed, Details: []string{fmt.Sprintf("No outputs found in history for prompt %s.", r.PromptID)}}
		}
		return map[string]any{"images": images, "status": "success_no_images"}, nil
	}
	m := map[string]any{"images": images}
	if len(videos) > 0 {
		m["videos"] = videos
	}
	if len(r.Warnings) > 0 {
		m["errors"] = r.Warnings
	}
	return m, nil
}
