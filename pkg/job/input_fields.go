package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/segmentio/asm/base64"

	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/output"
)

func (p *inputParser) parseWorkflow(m map[string]json.RawMessage, in *Input) error {
	wf, hasWF := m["workflow"]
	hasWF = hasWF && string(wf) != "null"
	switch {
	case hasWF && in.WorkflowURL != "" && p.format == output.FormatOriginal:
		// The original fetched workflow_url and ignored workflow.
		hasWF = false
	case hasWF && in.WorkflowURL != "":
		return inputErr("workflow_url", "give either workflow or workflow_url, not both")
	}
	switch {
	case in.WorkflowURL != "":
		u, err := url.Parse(in.WorkflowURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "gs") || u.Host == "" {
			return inputErr("workflow_url", "want an https:// URL or a gs:// URI")
		}
		return nil
	case !hasWF:
		return p.fail(wcNoWorkflow, nil, "workflow", "required: the workflow in ComfyUI's API format (or workflow_url)")
	}
	data := []byte(wf)
	if wf[0] == '"' { // a JSON string holding the workflow
		var s string
		if err := json.Unmarshal(wf, &s); err != nil {
			return inputErr("workflow", "want an object or a JSON string")
		}
		data = []byte(s)
	} else if wf[0] != '{' {
		return inputErr("workflow", "want an object (the workflow in ComfyUI's API format) or a JSON string holding one")
	}
	w, err := parseWorkflowJSON(data)
	if err != nil {
		return inputErr("workflow", "%v", err)
	}
	in.Workflow = w
	return nil
}

// parseWorkflowJSON checks that data is a JSON object before handing it to
// comfy.ParseWorkflow, so a user never reads a decoder's Go type names.
func parseWorkflowJSON(data []byte) (comfy.Workflow, error) {
	data = bytes.TrimSpace(data)
	var se *json.SyntaxError
	switch err := json.Unmarshal(data, new(json.RawMessage)); {
	case errors.As(err, &se):
		return nil, fmt.Errorf("not valid JSON (at byte %d): send the workflow exported with \"Export (API)\"", se.Offset)
	case err != nil:
		return nil, errors.New("not valid JSON: send the workflow exported with \"Export (API)\"")
	case data[0] != '{':
		return nil, errors.New("not a JSON object: a workflow in ComfyUI's API format is an object of nodes")
	}
	return comfy.ParseWorkflow(data)
}

func (p *inputParser) parseImages(m map[string]json.RawMessage, in *Input) error {
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
				return p.fail(wcUploadFails, []string{fmt.Sprintf("Error decoding base64 for %s: %v", name, err)}, field, "%q: %v", name, err)
			}
			img.Data = data
		}
		in.Images = append(in.Images, img)
		return nil
	}
	if v, ok := m["images"]; ok && string(v) != "null" {
		var list []struct {
			Name  *string `json:"name"`
			Image *string `json:"image"`
		}
		if err := json.Unmarshal(v, &list); err != nil {
			return p.fail(wcBadImages, nil, "images", "want a list of {\"name\": \"x.png\", \"image\": \"<base64, data URI, https:// URL or gs:// URI>\"}")
		}
		for i, e := range list {
			field := fmt.Sprintf("images[%d]", i)
			if e.Name == nil || e.Image == nil {
				return p.fail(wcBadImages, nil, field, "want {\"name\": \"x.png\", \"image\": \"<base64, data URI, https:// URL or gs:// URI>\"}")
			}
			if err := add(field, *e.Name, *e.Image); err != nil {
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
