package job

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

const wf = `{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}`

func TestParseInputValid(t *testing.T) {
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG fake"))
	in, err := ParseInput([]byte(`{"version_id": "v1", "workflow": `+wf+`, "timeout": 30,
	  "images": [{"name": "a.png", "image": "`+png+`"}, {"name": "b.png", "image": "data:image/png;base64,`+png+`"}],
	  "input_images": {"c.png": "https://example.com/c.png"}, "response_format": "worker-comfyui", "verbose": true}`), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if in.VersionID != "v1" || len(in.Workflow) != 2 || in.Timeout != 30*time.Second || in.OutputMode != "base64" || len(in.Images) != 3 {
		t.Fatalf("parsed %+v", in)
	}
	if string(in.Images[1].Data) != "\x89PNG fake" || in.Images[2].URL != "https://example.com/c.png" {
		t.Errorf("images %+v", in.Images)
	}
	// A workflow sent as a JSON string, and the version from the env.
	in, err = ParseInput([]byte(`{"workflow": `+strconvQuote(wf)+`}`), Defaults{VersionID: "env-v", OutputMode: "gcs"})
	if err != nil || in.VersionID != "env-v" || in.OutputMode != "gcs" || len(in.Workflow) != 2 {
		t.Fatalf("string workflow: %+v %v", in, err)
	}
}

func strconvQuote(s string) string {
	b := strings.Builder{}
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestParseInputInvalid(t *testing.T) {
	for _, tc := range []struct{ name, doc, field, msg string }{
		{"not an object", `[1]`, "", "JSON object"},
		{"missing version", `{"workflow": ` + wf + `}`, "version_id", "required"},
		{"traversal version", `{"version_id": "../../etc", "workflow": ` + wf + `}`, "version_id", "not a version id"},
		{"version not string", `{"version_id": 3, "workflow": ` + wf + `}`, "version_id", "want a string"},
		{"no workflow", `{"version_id": "v"}`, "workflow", "required"},
		{"both workflows", `{"version_id": "v", "workflow": ` + wf + `, "workflow_url": "https://x/w.json"}`, "workflow_url", "not both"},
		{"bad workflow url", `{"version_id": "v", "workflow_url": "ftp://x/w.json"}`, "workflow_url", "https://"},
		{"ui workflow", `{"version_id": "v", "workflow": {"nodes": [], "links": [], "version": 0.4}}`, "workflow", "UI format"},
		{"workflow not a graph", `{"version_id": "v", "workflow": {"1": 5}}`, "workflow", ""},
		{"unknown key", `{"version_id": "v", "workflow": ` + wf + `, "seed": 1}`, "seed", "unknown key"},
		{"bad base64", `{"version_id": "v", "workflow": ` + wf + `, "images": [{"name": "a.png", "image": "!!!"}]}`, "images[0]", "not valid base64"},
		{"traversal image name", `{"version_id": "v", "workflow": ` + wf + `, "images": [{"name": "../a.png", "image": "AAAA"}]}`, "images[0]", "path separator"},
		{"duplicate image", `{"version_id": "v", "workflow": ` + wf + `, "images": [{"name": "a.png", "image": "AAAA"}], "input_images": {"a.png": "https://x/a"}}`, "input_images.a.png", "twice"},
		{"images not a list", `{"version_id": "v", "workflow": ` + wf + `, "images": {"a": 1}}`, "images", "want a list"},
		{"bad output mode", `{"version_id": "v", "workflow": ` + wf + `, "output_mode": "ftp"}`, "output_mode", "use"},
		{"bad format", `{"version_id": "v", "workflow": ` + wf + `, "response_format": "xml"}`, "response_format", "use"},
		{"bad timeout", `{"version_id": "v", "workflow": ` + wf + `, "timeout": -1}`, "timeout", "positive"},
		{"data uri not base64", `{"version_id": "v", "workflow": ` + wf + `, "images": [{"name": "a.png", "image": "data:image/png,abc"}]}`, "images[0]", "data URI"},
	} {
		_, err := ParseInput([]byte(tc.doc), Defaults{})
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != tc.field || !strings.Contains(ie.Msg, tc.msg) {
			t.Errorf("%s: got %v (field %q), want field %q with %q", tc.name, err, fieldOf(ie), tc.field, tc.msg)
		}
	}
	if _, err := ParseInput([]byte(`{"version_id": "v", "workflow": `+wf+`, "timeout": 900}`), Defaults{MaxTimeout: time.Minute}); err == nil {
		t.Error("timeout over the endpoint's limit accepted")
	}
}

func fieldOf(ie *InputError) string {
	if ie == nil {
		return "<nil>"
	}
	return ie.Field
}

// TestDecodeBase64Forms: every form clients send decodes to the same bytes
// as encoding/base64 gives, large inputs included.
func TestDecodeBase64Forms(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 61, 1 << 20} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*31 + n) // every byte value, so +/ and -_ occur
		}
		std := base64.StdEncoding.EncodeToString(data)
		var wrapped strings.Builder
		for i := 0; i < len(std); i += 76 {
			wrapped.WriteString(std[i:min(i+76, len(std))] + "\r\n")
		}
		for name, s := range map[string]string{
			"standard":     std,
			"unpadded":     base64.RawStdEncoding.EncodeToString(data),
			"URL alphabet": base64.URLEncoding.EncodeToString(data),
			"URL unpadded": base64.RawURLEncoding.EncodeToString(data),
			"line breaks":  wrapped.String(),
			"data URI":     "data:image/png;base64," + std,
		} {
			got, err := decodeBase64(s)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%d bytes, %s: %v", n, name, err)
			}
		}
	}
}
