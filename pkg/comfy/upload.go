package comfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
)

// UploadInput stores r in ComfyUI's input folder as name (replacing a file
// of that name) with POST /upload/image, streaming it: the file is never
// held in memory. It returns the name to use in the workflow, which ComfyUI
// may qualify with a subfolder.
func (c *Client) UploadInput(ctx context.Context, name string, r io.Reader) (string, error) {
	if err := CheckInputName(name); err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		pw.CloseWithError(writeUploadForm(mw, name, r))
	}()
	// Whatever happens to the request, the writer goroutine must end.
	defer func() {
		pr.CloseWithError(errors.New("upload finished"))
		<-writerDone
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/upload/image", nil), pr)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload %s to ComfyUI: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("upload %s to ComfyUI: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusRequestEntityTooLarge {
			hint = " (larger than ComfyUI's --max-upload-size)"
		}
		return "", &HTTPError{Op: "POST /upload/image " + name + hint, Status: resp.StatusCode, Body: truncate(strings.TrimSpace(string(body)), maxErrorBody)}
	}
	var out struct {
		Name      string `json:"name"`
		Subfolder string `json:"subfolder"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Name == "" {
		return "", fmt.Errorf("upload %s to ComfyUI: unexpected answer %q", name, truncate(string(body), maxErrorBody))
	}
	return path(out.Subfolder, out.Name), nil
}

func writeUploadForm(mw *multipart.Writer, name string, r io.Reader) error {
	if err := mw.WriteField("overwrite", "true"); err != nil {
		return err
	}
	if err := mw.WriteField("type", "input"); err != nil {
		return err
	}
	part, err := mw.CreateFormFile("image", name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, r); err != nil {
		return fmt.Errorf("read input %s: %w", name, err)
	}
	return mw.Close()
}

// uploadInputs uploads each input under prefix_name and returns original →
// stored names.
func (c *Client) uploadInputs(ctx context.Context, prefix string, inputs []Input) (map[string]string, error) {
	names := make(map[string]string, len(inputs))
	for _, in := range inputs {
		if err := CheckInputName(in.Name); err != nil {
			return nil, err
		}
		if _, dup := names[in.Name]; dup {
			return nil, fmt.Errorf("input file %q is given twice", in.Name)
		}
		stored, err := c.UploadInput(ctx, UniqueInputName(prefix, in.Name), in.Reader)
		if err != nil {
			return nil, c.explain(ctx, "", err)
		}
		names[in.Name] = stored
	}
	return names, nil
}
