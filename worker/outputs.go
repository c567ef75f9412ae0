package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// resultFiles reads the output entries of a result in any of its shapes.
func resultFiles(out any) ([]map[string]string, error) {
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Outputs []map[string]any `json:"outputs"`
		Images  []map[string]any `json:"images"`
		Videos  []map[string]any `json:"videos"`
		Base64  string           `json:"base64"`
		Ext     string           `json:"extension"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var files []map[string]string
	for _, o := range doc.Outputs {
		files = append(files, map[string]string{"filename": str(o["filename"]), "base64": str(o["base64"])})
	}
	for _, o := range append(doc.Images, doc.Videos...) {
		if str(o["type"]) == "base64" {
			files = append(files, map[string]string{"filename": str(o["filename"]), "base64": str(o["data"])})
		}
	}
	if doc.Base64 != "" {
		files = append(files, map[string]string{"filename": "output" + doc.Ext, "base64": doc.Base64})
	}
	return files, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func firstBase64(out any) (string, error) {
	files, err := resultFiles(out)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if f["base64"] != "" {
			return f["base64"], nil
		}
	}
	return "", fmt.Errorf("--raw-base64: the result has no base64 output (use --output base64)")
}

// writeOutputFiles decodes every base64 output into dir under its own
// (sanitised) file name.
func writeOutputFiles(out any, dir string) error {
	files, err := resultFiles(out)
	if err != nil {
		return err
	}
	for _, f := range files {
		if f["base64"] == "" {
			continue
		}
		data, err := base64.StdEncoding.DecodeString(f["base64"])
		if err != nil {
			return fmt.Errorf("output %s: %w", f["filename"], err)
		}
		name := filepath.Base(strings.ReplaceAll(f["filename"], "\\", "/"))
		if name == "." || name == ".." || name == "/" || name == "" {
			name = "output"
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return os.MkdirAll(dir, 0o755)
}
