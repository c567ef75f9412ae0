// Package output delivers a job's output files: as base64 inside the
// result, as Google Cloud Storage objects (gcs.go) or as objects of an
// S3-compatible store (s3.go); and it renders the result in the shapes
// existing clients expect.
package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
)

// Local is an output file collected from ComfyUI onto local disk.
type Local struct {
	NodeID    string
	Kind      string // the history output key: images, gifs, videos, audio, ...
	Filename  string
	Subfolder string
	Type      string // output or temp
	// Path is the file on disk, unless Data holds the content.
	Path string
	// Data is the content when it is in memory; nil means read Path.
	Data []byte
	// SHA256 is the content's hex digest when already known ("" = compute).
	SHA256 string
}

// size is the file's size in bytes.
func (l Local) size() (int64, error) {
	if l.Data != nil {
		return int64(len(l.Data)), nil
	}
	st, err := os.Stat(l.Path)
	if err != nil {
		return 0, fmt.Errorf("output %s: %w", l.Filename, err)
	}
	return st.Size(), nil
}

// open returns the content from its start; Seek(0) restarts it.
func (l Local) open() (io.ReadSeekCloser, error) {
	if l.Data != nil {
		return nopCloser{bytes.NewReader(l.Data)}, nil
	}
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", l.Filename, err)
	}
	return f, nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// content returns the content in memory.
func (l Local) content() ([]byte, error) {
	if l.Data != nil {
		return l.Data, nil
	}
	data, err := os.ReadFile(l.Path)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", l.Filename, err)
	}
	return data, nil
}

// File is one delivered output, as it appears in a job result.
type File struct {
	NodeID      string `json:"node_id"`
	Kind        string `json:"kind"`
	Filename    string `json:"filename"`
	Subfolder   string `json:"subfolder,omitempty"`
	Type        string `json:"type"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Base64      *Blob  `json:"base64,omitempty"`
	URL         string `json:"url,omitempty"`
	GCSPath     string `json:"gcs_path,omitempty"`
	S3Path      string `json:"s3_path,omitempty"`
	SignedURL   string `json:"signed_url,omitempty"`
}

// DefaultBase64Limit keeps a result under RunPod's result size limit
// (about 20 MB for /runsync) with room for the rest of the JSON.
const DefaultBase64Limit = 19 << 20

// TooLargeError is a base64 result that would not fit in a RunPod result.
type TooLargeError struct {
	Encoded, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the outputs are %.1f MB as base64, over the %.0f MB a RunPod result can carry: use \"output_mode\": \"gcs\" or \"s3\" (with GCS or S3 set up on the endpoint) to receive them as URLs",
		float64(e.Encoded)/1e6, float64(e.Limit)/1e6)
}

// EncodedLen is the base64 length of n bytes.
func EncodedLen(n int64) int64 { return (n + 2) / 3 * 4 }

// Base64 puts every file into the result, to be encoded as base64 when the
// result is rendered. It checks the total encoded size against limit before
// reading anything, so an oversized result fails fast and clearly instead
// of being truncated by the platform.
func Base64(ctx context.Context, files []Local, limit int64) ([]File, error) {
	if limit <= 0 {
		limit = DefaultBase64Limit
	}
	var total int64
	for _, f := range files {
		n, err := f.size()
		if err != nil {
			return nil, err
		}
		total += EncodedLen(n)
	}
	if total > limit {
		return nil, &TooLargeError{Encoded: total, Limit: limit}
	}
	out := make([]File, 0, len(files))
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		df, err := describe(f)
		if err != nil {
			return nil, err
		}
		data, err := f.content()
		if err != nil {
			return nil, err
		}
		df.SHA256 = f.SHA256
		if df.SHA256 == "" {
			sum := sha256.Sum256(data)
			df.SHA256 = hex.EncodeToString(sum[:])
		}
		df.Size, df.Base64 = int64(len(data)), NewBlob(data)
		out = append(out, df)
	}
	return out, nil
}

// describe fills the metadata of a file (not its digest or content).
func describe(f Local) (File, error) {
	n, err := f.size()
	if err != nil {
		return File{}, err
	}
	typ := f.Type
	if typ == "" {
		typ = "output"
	}
	return File{NodeID: f.NodeID, Kind: f.Kind, Filename: f.Filename, Subfolder: f.Subfolder, Type: typ,
		ContentType: ContentType(f.Filename), Size: n}, nil
}

// extraTypes covers what ComfyUI nodes write and Go's table may lack.
var extraTypes = map[string]string{
	".webp": "image/webp", ".webm": "video/webm", ".mp4": "video/mp4", ".mov": "video/quicktime",
	".mkv": "video/x-matroska", ".gif": "image/gif", ".png": "image/png", ".jpg": "image/jpeg",
	".jpeg": "image/jpeg", ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg",
	".ogg": "audio/ogg", ".opus": "audio/opus", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
	".glb": "model/gltf-binary", ".obj": "model/obj", ".latent": "application/octet-stream",
	".safetensors": "application/octet-stream", ".zip": "application/zip",
}

// ContentType guesses a file's media type from its name.
func ContentType(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	if t, ok := extraTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}
