package endpoint

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// fileServer serves fixed files on 127.0.0.1 and records the headers of
// each request.
func fileServer(t *testing.T, files map[string]string) (*httptest.Server, *[]http.Header) {
	t.Helper()
	var headers []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers = append(headers, r.Header.Clone())
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("chunked") != "" {
			// No Content-Length: the size limit must hold while copying.
			w.(http.Flusher).Flush()
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &headers
}

// dirFiles lists a directory's entries with their content.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func TestWriteOutputsShapes(t *testing.T) {
	srv, _ := fileServer(t, map[string]string{"/b/obj/x.png": "PNG-FROM-URL", "/signed/x.png": "SIGNED", "/b/vid.mp4": "MP4DATA"})
	tests := []struct {
		name   string
		output string
		want   map[string]string
	}{
		{
			name: "default base64 and url",
			output: fmt.Sprintf(`{"version_id":"v","output_mode":"base64","outputs":[
				{"node_id":"9","kind":"images","filename":"a_00001_.png","type":"output","size":3,"sha256":%q,"base64":%q},
				{"node_id":"9","kind":"images","filename":"b.png","type":"output","sha256":"sha256:%s","url":"%s/b/obj/x.png"}]}`,
				sum("AAA"), b64("AAA"), sum("PNG-FROM-URL"), srv.URL),
			want: map[string]string{"a_00001_.png": "AAA", "b.png": "PNG-FROM-URL"},
		},
		{
			name:   "default prefers the signed url",
			output: fmt.Sprintf(`{"outputs":[{"filename":"s.png","url":"%s/b/obj/x.png","gcs_path":"gs://b/obj/x.png","signed_url":"%s/signed/x.png?X-Goog-Signature=abc"}]}`, srv.URL, srv.URL),
			want:   map[string]string{"s.png": "SIGNED"},
		},
		{
			name:   "original base64",
			output: fmt.Sprintf(`{"version_id":"v","output_mode":"base64","base64":%q,"size":5,"extension":".png"}`, b64("HELLO")),
			want:   map[string]string{"output.png": "HELLO"},
		},
		{
			name:   "original url",
			output: fmt.Sprintf(`{"version_id":"v","output_mode":"gcs","url":"%s/b/vid.mp4","gcs_path":"gs://b/vid.mp4","size":7,"extension":".mp4"}`, srv.URL),
			want:   map[string]string{"vid.mp4": "MP4DATA"},
		},
		{
			name:   "worker-comfyui images",
			output: fmt.Sprintf(`{"images":[{"filename":"c.png","type":"base64","data":%q},{"filename":"d.png","type":"s3_url","data":"%s/b/obj/x.png"}]}`, b64("CCC"), srv.URL),
			want:   map[string]string{"c.png": "CCC", "d.png": "PNG-FROM-URL"},
		},
		{
			name:   "worker-comfyui videos",
			output: fmt.Sprintf(`{"images":[],"videos":[{"filename":"v.mp4","type":"base64","data":%q}]}`, b64("VVV")),
			want:   map[string]string{"v.mp4": "VVV"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			w := &OutputWriter{HTTPClient: srv.Client()}
			paths, err := w.WriteOutputs(context.Background(), raw(tt.output), dir)
			if err != nil {
				t.Fatalf("WriteOutputs: %v", err)
			}
			if got := dirFiles(t, dir); !mapsEqual(got, tt.want) {
				t.Errorf("files = %q, want %q", got, tt.want)
			}
			if len(paths) != len(tt.want) {
				t.Errorf("paths = %q", paths)
			}
			for _, p := range paths {
				if filepath.Dir(p) != dir {
					t.Errorf("path %s is not in %s", p, dir)
				}
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestWriteOutputsVerifies(t *testing.T) {
	srv, _ := fileServer(t, map[string]string{"/f": "REAL"})
	tests := []struct {
		name, entry string
	}{
		{"base64 checksum", fmt.Sprintf(`{"filename":"bad.png","sha256":%q,"base64":%q}`, sum("OTHER"), b64("REAL"))},
		{"url checksum", fmt.Sprintf(`{"filename":"bad.png","sha256":%q,"url":"%s/f"}`, sum("OTHER"), srv.URL)},
		{"size", fmt.Sprintf(`{"filename":"bad.png","size":99,"base64":%q}`, b64("REAL"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			good := fmt.Sprintf(`{"filename":"good.png","sha256":%q,"base64":%q}`, sum("OK"), b64("OK"))
			out := `{"outputs":[` + tt.entry + `,` + good + `]}`
			paths, err := (&OutputWriter{HTTPClient: srv.Client()}).WriteOutputs(context.Background(), raw(out), dir)
			var ce *ChecksumError
			if !errors.As(err, &ce) || ce.Name != "bad.png" {
				t.Fatalf("err = %v, want a ChecksumError for bad.png", err)
			}
			if !strings.Contains(err.Error(), "not written") {
				t.Errorf("error %q does not say the file was not written", err)
			}
			// Nothing of the bad file is left, not even a temp file; the
			// good one is still written.
			if got := dirFiles(t, dir); !mapsEqual(got, map[string]string{"good.png": "OK"}) {
				t.Errorf("directory = %q", got)
			}
			if len(paths) != 1 {
				t.Errorf("paths = %q", paths)
			}
		})
	}
}

func TestWriteOutputsUnsafeNames(t *testing.T) {
	names := []struct{ given, want string }{
		{"../../evil.png", "evil.png"},
		{"/etc/passwd", "passwd"},
		{`..\..\windows.png`, "windows.png"},
		{"..", "output-4"},
		{"", "output-5"},
		{".bashrc", "bashrc"},
		{"a\x00b\nc.png", "a_b_c.png"},
		{`con:x?.png`, "con_x_.png"},
		{"sub/dir/", "output-9"},
	}
	var entries []string
	for _, n := range names {
		e, _ := json.Marshal(map[string]string{"filename": n.given, "base64": b64(n.given + "!")})
		entries = append(entries, string(e))
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	_, err := (&OutputWriter{}).WriteOutputs(context.Background(), raw(`{"outputs":[`+strings.Join(entries, ",")+`]}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	got := dirFiles(t, dir)
	for _, n := range names {
		if got[n.want] != n.given+"!" {
			t.Errorf("%q: want it written as %q; directory has %q", n.given, n.want, keys(got))
		}
	}
	if len(got) != len(names) {
		t.Errorf("directory has %d files, want %d: %q", len(got), len(names), keys(got))
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("something was written outside the output directory: %v", ents)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestWriteOutputsNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.png"), []byte("MINE"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf(`{"outputs":[{"filename":"a.png","base64":%q},{"filename":"sub/a.png","base64":%q},{"filename":"noext","base64":%q},{"filename":"noext","base64":%q}]}`,
		b64("ONE"), b64("TWO"), b64("X1"), b64("X2"))
	paths, err := (&OutputWriter{}).WriteOutputs(context.Background(), raw(out), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.png": "MINE", "a-1.png": "ONE", "a-2.png": "TWO", "noext": "X1", "noext-1": "X2"}
	if got := dirFiles(t, dir); !mapsEqual(got, want) {
		t.Errorf("directory = %q, want %q", got, want)
	}
	wantPaths := []string{"a-1.png", "a-2.png", "noext", "noext-1"}
	for i, p := range paths {
		if filepath.Base(p) != wantPaths[i] {
			t.Errorf("paths = %q, want the names %q in order", paths, wantPaths)
			break
		}
	}
}

func TestWriteOutputsDownloadFailures(t *testing.T) {
	big := strings.Repeat("x", 100)
	srv, headers := fileServer(t, map[string]string{"/big": big, "/ok": "fine"})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	tests := []struct {
		name, url string
		phrase    string
	}{
		{"over the limit with a length", srv.URL + "/big", "limit"},
		{"over the limit while copying", srv.URL + "/big?chunked=1", "limit"},
		{"not found", srv.URL + "/missing", "HTTP 404"},
		{"too slow", slow.URL + "/s", "deadline"},
		{"gs path", "gs://bucket/obj.png", "signed URLs"},
		{"signed query stays out of errors", srv.URL + "/missing?X-Goog-Signature=SECRETSIG", "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := &OutputWriter{MaxBytes: 10, Timeout: 200 * time.Millisecond}
			out := fmt.Sprintf(`{"outputs":[{"filename":"f.bin","url":%q}]}`, tt.url)
			paths, err := w.WriteOutputs(context.Background(), raw(out), dir)
			if err == nil || !strings.Contains(err.Error(), tt.phrase) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.phrase)
			}
			if strings.Contains(err.Error(), "SECRETSIG") {
				t.Errorf("error %q shows the URL signature", err)
			}
			if len(paths) != 0 || len(dirFiles(t, dir)) != 0 {
				t.Errorf("something was written: %q %q", paths, dirFiles(t, dir))
			}
		})
	}
	for _, h := range *headers {
		if h.Get("Authorization") != "" {
			t.Errorf("a download sent Authorization %q", h.Get("Authorization"))
		}
	}
}

func TestWriteOutputsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	}))
	defer srv.Close()
	go func() {
		<-started
		cancel()
	}()
	dir := t.TempDir()
	_, err := (&OutputWriter{}).WriteOutputs(ctx, raw(fmt.Sprintf(`{"outputs":[{"filename":"f","url":"%s/x"}]}`, srv.URL)), dir)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := len(dirFiles(t, dir)); n != 0 {
		t.Errorf("%d files left", n)
	}
}

func TestWriteOutputsBase64Forms(t *testing.T) {
	tests := []struct {
		name, data, want string
		fails            bool
	}{
		{"padded", b64("hello!!"), "hello!!", false},
		{"unpadded", strings.TrimRight(b64("hello!!"), "="), "hello!!", false},
		{"data URI", "data:image/png;base64," + b64("PNG"), "PNG", false},
		{"line breaks", b64("0123456789")[:8] + "\n" + b64("0123456789")[8:], "0123456789", false},
		{"not base64", "@@@@", "", true},
		{"data URI not base64", "data:text/plain,hello", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out, _ := json.Marshal(map[string]any{"images": []map[string]string{{"filename": "f.bin", "type": "base64", "data": tt.data}}})
			_, err := (&OutputWriter{}).WriteOutputs(context.Background(), out, dir)
			if tt.fails {
				if err == nil {
					t.Fatal("accepted")
				}
				if n := len(dirFiles(t, dir)); n != 0 {
					t.Errorf("%d files left after a failure", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := dirFiles(t, dir)["f.bin"]; got != tt.want {
				t.Errorf("content %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteOutputsNoFiles(t *testing.T) {
	for _, out := range []string{``, `null`, `[1,2]`, `{"message":"hi"}`, `{"images":[],"status":"success_no_images"}`, `{"outputs":[]}`} {
		dir := filepath.Join(t.TempDir(), "out")
		paths, err := (&OutputWriter{}).WriteOutputs(context.Background(), raw(out), dir)
		if err != nil || len(paths) != 0 {
			t.Errorf("%s: %q, %v", out, paths, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: the output directory was created", out)
		}
	}
}

// BenchmarkWriteOutputsBase64 measures decoding a result near RunPod's
// 20 MB limit (15 MB of file as base64).
func BenchmarkWriteOutputsBase64(b *testing.B) {
	data := strings.Repeat("0123456789abcdef", 15<<20/16)
	out, _ := json.Marshal(map[string]any{"outputs": []map[string]any{{"filename": "big.bin", "base64": b64(data), "sha256": sum(data)}}})
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		dir := b.TempDir()
		if _, err := (&OutputWriter{}).WriteOutputs(context.Background(), out, dir); err != nil {
			b.Fatal(err)
		}
	}
}
