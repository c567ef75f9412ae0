package job

import (
	"encoding/base64"
	"encoding/json"
)

// Request is a job input made by a program (run-handler, a warm-up)
// rather than sent by a client; its JSON is what ParseInput reads.
type Request struct {
	VersionID      string          `json:"version_id"`
	Workflow       json.RawMessage `json:"workflow,omitempty"`
	OutputMode     string          `json:"output_mode,omitempty"`
	GCSBucket      string          `json:"gcs_bucket,omitempty"`
	GCSPrefix      string          `json:"gcs_prefix,omitempty"`
	ResponseFormat string          `json:"response_format,omitempty"`
	// Timeout is in seconds; 0 leaves the worker's default.
	Timeout float64        `json:"timeout,omitempty"`
	Images  []RequestImage `json:"images,omitempty"`
}

// RequestImage is an input file, named as the workflow refers to it.
type RequestImage struct {
	Name  string `json:"name"`
	Image string `json:"image"` // base64
}

// AddImage adds a file's bytes as an input named name.
func (r *Request) AddImage(name string, data []byte) {
	r.Images = append(r.Images, RequestImage{Name: name, Image: base64.StdEncoding.EncodeToString(data)})
}

// JSON is the request as a job's input.
func (r Request) JSON() (json.RawMessage, error) {
	if len(r.Workflow) > 0 && !json.Valid(r.Workflow) {
		return nil, inputErr("workflow", "not valid JSON")
	}
	return json.Marshal(r)
}
