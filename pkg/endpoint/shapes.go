package endpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// fileEntry is one output file found in a result, whatever its shape.
type fileEntry struct {
	// Name is the name the result gives, unsanitised.
	Name   string
	Base64 string
	URL    string
	// SHA256 and Size are checked when the result gives them.
	SHA256 string
	Size   *int64
}

// defaultFile is an entry of this worker's default {outputs: [...]}.
type defaultFile struct {
	Filename  string `json:"filename"`
	Base64    string `json:"base64"`
	URL       string `json:"url"`
	SignedURL string `json:"signed_url"`
	SHA256    string `json:"sha256"`
	Size      *int64 `json:"size"`
}

// wcImage is an entry of worker-comfyui's {images: [...]}.
type wcImage struct {
	Filename string `json:"filename"`
	Type     string `json:"type"`
	Data     string `json:"data"`
}

// resultDoc holds every key any of the shapes uses; the shapes do not
// overlap, so one decode reads whichever is there.
type resultDoc struct {
	Outputs []defaultFile `json:"outputs"`
	Images  []wcImage     `json:"images"`
	// Videos are worker-comfyui's newer video list, entries as in Images.
	Videos []wcImage `json:"videos"`
	// The original tool's single output.
	Base64    string `json:"base64"`
	URL       string `json:"url"`
	SignedURL string `json:"signed_url"`
	Extension string `json:"extension"`
	Size      *int64 `json:"size"`
}

// parseOutputs lists the files of a result. A result in none of the known
// shapes (or a non-object) has no files.
func parseOutputs(out json.RawMessage) ([]fileEntry, error) {
	if t := bytes.TrimSpace(out); len(t) == 0 || t[0] != '{' {
		return nil, nil
	}
	// One decode: results near RunPod's 20 MB limit are mostly base64, and
	// every pass over them costs.
	var doc resultDoc
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("the result's outputs are not in a known shape: %w", err)
	}
	var files []fileEntry
	for _, f := range doc.Outputs {
		e := fileEntry{Name: f.Filename, Base64: f.Base64, SHA256: f.SHA256, Size: f.Size}
		if f.Base64 == "" {
			// A signed URL works for a private bucket; the public URL may not.
			e.URL = firstNonEmpty(f.SignedURL, f.URL)
		}
		files = append(files, e)
	}
	for _, im := range append(doc.Images, doc.Videos...) {
		e := fileEntry{Name: im.Filename}
		switch strings.ToLower(im.Type) {
		case "base64":
			e.Base64 = im.Data
		case "s3_url", "url":
			e.URL = im.Data
		default:
			if isHTTPURL(im.Data) {
				e.URL = im.Data
			} else {
				e.Base64 = im.Data
			}
		}
		files = append(files, e)
	}
	// A present list, even empty, means the single-output keys are not
	// the original tool's (json.Unmarshal makes [] a non-nil slice).
	if doc.Outputs == nil && doc.Images == nil {
		if e, ok := original(doc); ok {
			files = append(files, e)
		}
	}
	return files, nil
}

// original reads the original tool's single output. Its name is
// "output<extension>", or the URL's last path segment.
func original(doc resultDoc) (fileEntry, bool) {
	ext := doc.Extension
	if ext != "" && !strings.HasPrefix(ext, ".") {
		ext = "." + ext
	}
	if doc.Base64 != "" {
		return fileEntry{Name: "output" + ext, Base64: doc.Base64, Size: doc.Size}, true
	}
	u := firstNonEmpty(doc.SignedURL, doc.URL)
	if u == "" {
		return fileEntry{}, false
	}
	name := "output" + ext
	if pu, err := url.Parse(doc.URL); err == nil && path.Base(pu.Path) != "" && strings.Contains(path.Base(pu.Path), ".") {
		name = path.Base(pu.Path)
	}
	return fileEntry{Name: name, URL: u, Size: doc.Size}, true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func isHTTPURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// FirstBase64 returns the base64 data of a result's first output that
// carries it inline, in any of the result shapes.
func FirstBase64(out json.RawMessage) (string, bool) {
	files, err := parseOutputs(out)
	if err != nil {
		return "", false
	}
	for _, f := range files {
		if f.Base64 != "" {
			return f.Base64, true
		}
	}
	return "", false
}
