package output

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
)

func writeOutput(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestGCS(t testing.TB, f *fakeGCS, mut func(*GCSConfig)) *GCS {
	t.Helper()
	cfg := GCSConfig{Bucket: "outputs", Client: f.client, RetryBackoff: time.Millisecond, ChunkSize: 256 << 10}
	if mut != nil {
		mut(&cfg)
	}
	g, err := NewGCS(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestGCSUploadNamesTypesAndBytes(t *testing.T) {
	f := newFakeGCS(t, "outputs", "other")
	g := newTestGCS(t, f, nil)
	dir := t.TempDir()
	png := randomBytes(t, 1000)
	big := randomBytes(t, 700<<10) // several resumable chunks
	tests := []struct {
		name   string
		req    UploadRequest
		data   [][]byte
		bucket string
		want   []string // object names
		types  []string
	}{
		{
			name: "default prefix, job id and node in every name",
			req: UploadRequest{JobID: "job-1", Files: []Local{
				{NodeID: "9", Kind: "images", Filename: "ComfyUI_00001_.png", Type: "output"},
				{NodeID: "12", Kind: "videos", Filename: "clip.mp4", Subfolder: "video/run 1", Type: "output"},
			}},
			data:   [][]byte{png, big},
			bucket: "outputs",
			want:   []string{"comfy/outputs/job-1/9_ComfyUI_00001_.png", "comfy/outputs/job-1/video/run_1/12_clip.mp4"},
			types:  []string{"image/png", "video/mp4"},
		},
		{
			name:   "job overrides bucket (gs:// form) and prefix",
			req:    UploadRequest{Bucket: "gs://other/", Prefix: "/a/b/", JobID: "job-2", Files: []Local{{NodeID: "3", Filename: "out.webp"}}},
			data:   [][]byte{png},
			bucket: "other",
			want:   []string{"a/b/job-2/3_out.webp"},
			types:  []string{"image/webp"},
		},
		{
			name:   "slash prefix means none",
			req:    UploadRequest{Prefix: "/", JobID: "job-3", Files: []Local{{NodeID: "1", Filename: "a.wav"}}},
			data:   [][]byte{png},
			bucket: "outputs",
			want:   []string{"job-3/1_a.wav"},
			types:  []string{"audio/wav"},
		},
		{
			name: "traversal and odd characters are neutralised",
			req: UploadRequest{JobID: "../x y", Files: []Local{
				{NodeID: "7", Filename: "../../etc/passwd"},
				{NodeID: "5", Filename: "猫 cat?.gif", Subfolder: "../.."},
			}},
			data:   [][]byte{png, png},
			bucket: "outputs",
			want:   []string{"comfy/outputs/__x_y/7_passwd", "comfy/outputs/__x_y/_/_/5_猫_cat_.gif"},
			types:  []string{"application/octet-stream", "image/gif"},
		},
		{
			name: "the same name twice gets a suffix",
			req: UploadRequest{JobID: "job-5", Files: []Local{
				{NodeID: "4", Filename: "x.png", Type: "output"},
				{NodeID: "4", Filename: "x.png", Type: "temp"},
			}},
			data:   [][]byte{png, big},
			bucket: "outputs",
			want:   []string{"comfy/outputs/job-5/4_x.png", "comfy/outputs/job-5/4_x-2.png"},
			types:  []string{"image/png", "image/png"},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for j := range tc.req.Files {
				tc.req.Files[j].Path = writeOutput(t, dir, filepath.Join(strings.Repeat("d", i+1), strings.Repeat("f", j+1)), tc.data[j])
			}
			got, err := g.Upload(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d files, want %d", len(got), len(tc.want))
			}
			objs := f.objects(t, tc.bucket)
			for j, name := range tc.want {
				o, ok := objs[name]
				if !ok {
					t.Fatalf("object %q missing; have %v", name, keys(objs))
				}
				if !bytes.Equal(o.Content, tc.data[j]) {
					t.Errorf("%s: stored %d bytes that differ from the %d of the file", name, len(o.Content), len(tc.data[j]))
				}
				if o.ContentType != tc.types[j] {
					t.Errorf("%s: content type %q, want %q", name, o.ContentType, tc.types[j])
				}
				sum := sha256.Sum256(tc.data[j])
				fl := got[j]
				if fl.SHA256 != hex.EncodeToString(sum[:]) || fl.Size != int64(len(tc.data[j])) {
					t.Errorf("%s: sha %s size %d, want %x %d", name, fl.SHA256, fl.Size, sum, len(tc.data[j]))
				}
				if fl.GCSPath != "gs://"+tc.bucket+"/"+name {
					t.Errorf("gcs_path %q", fl.GCSPath)
				}
				if want := objectURL(PublicGCSBase, tc.bucket, name); fl.URL != want || !strings.HasPrefix(fl.URL, "https://storage.googleapis.com/"+tc.bucket+"/") {
					t.Errorf("url %q, want %q", fl.URL, want)
				}
				if fl.ContentType != tc.types[j] || fl.Base64 != nil || fl.SignedURL != "" || fl.NodeID != tc.req.Files[j].NodeID {
					t.Errorf("file %+v", fl)
				}
			}
		})
	}
	// The URL escapes what is not URL-safe, and nothing else.
	if u := objectURL(PublicGCSBase, "b", "p/猫 x.png"); u != "https://storage.googleapis.com/b/p/%E7%8C%AB%20x.png" {
		t.Errorf("objectURL = %s", u)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// nth returns a hook that applies flt to the upload requests whose 1-based
// index is in which, and passes every other request.
func nth(flt fault, which ...int) func(*http.Request) fault {
	var mu sync.Mutex
	n := 0
	return func(r *http.Request) fault {
		if requestKind(r) != "upload" {
			return pass
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		if slices.Contains(which, n) {
			return flt
		}
		return pass
	}
}

func always(flt fault) func(*http.Request) fault {
	return func(r *http.Request) fault {
		if requestKind(r) == "upload" {
			return flt
		}
		return pass
	}
}

func TestGCSRetries(t *testing.T) {
	data := randomBytes(t, 700<<10) // 3 chunks of 256 KiB
	tests := []struct {
		name        string
		hook        func(*http.Request) fault
		wantErr     string
		uploads     int // requests: session start + 3 chunks when all goes well
		wantAttempt int
	}{
		// A failed request is retried in place: the upload resumes, it
		// does not start over (which would cost 4 more requests).
		{name: "503 on session start, twice", hook: nth(fail503, 1, 2), uploads: 6},
		{name: "503 on a middle chunk", hook: nth(fail503, 3), uploads: 5},
		{name: "connection dropped twice on a chunk", hook: nth(dropConn, 2, 3), uploads: 6},
		// 3 requests in place, then restarted from the file, 3 times.
		{name: "always 503 fails after every attempt", hook: always(fail503), wantErr: "503", uploads: 9, wantAttempt: 3},
		{name: "403 is not retried", hook: always(fail403), wantErr: "roles/storage.objectCreator", uploads: 1, wantAttempt: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGCS(t, "outputs")
			g := newTestGCS(t, f, func(c *GCSConfig) { c.MaxAttempts = 3 })
			f.setHook(tc.hook)
			p := writeOutput(t, t.TempDir(), "out.png", data)
			got, err := g.Upload(context.Background(), UploadRequest{JobID: "j", Files: []Local{{NodeID: "1", Filename: "out.png", Path: p}}})
			if n := f.count("upload"); n != tc.uploads {
				t.Errorf("%d upload requests, want %d", n, tc.uploads)
			}
			objs := f.objects(t, "outputs")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if o := objs["comfy/outputs/j/1_out.png"]; !bytes.Equal(o.Content, data) || len(got) != 1 {
					t.Fatalf("object has %d bytes, want %d", len(o.Content), len(data))
				}
				return
			}
			var ue *UploadError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want an *UploadError mentioning %q", err, tc.wantErr)
			}
			if ue.Attempts != tc.wantAttempt || ue.Object != "comfy/outputs/j/1_out.png" || ue.Bucket != "outputs" {
				t.Errorf("UploadError %+v", ue)
			}
			if got != nil || len(objs) != 0 {
				t.Errorf("a failed upload left results %v and objects %v", got, keys(objs))
			}
		})
	}
}

func TestGCSFailedJobLeavesNothing(t *testing.T) {
	f := newFakeGCS(t, "outputs")
	g := newTestGCS(t, f, func(c *GCSConfig) { c.Parallel = 1; c.MaxAttempts = 2 })
	dir := t.TempDir()
	files := []Local{
		{NodeID: "1", Filename: "a.png", Path: writeOutput(t, dir, "a.png", []byte("first"))},
		{NodeID: "2", Filename: "b.png", Path: writeOutput(t, dir, "b.png", []byte("second"))},
	}
	// The first file's single request succeeds; the second file fails.
	f.setHook(func(r *http.Request) fault {
		if requestKind(r) == "upload" && f.count("upload") > 1 {
			return fail403
		}
		return pass
	})
	got, err := g.Upload(context.Background(), UploadRequest{JobID: "j", Files: files})
	if err == nil || got != nil {
		t.Fatalf("Upload = %v, %v; want an error and no files", got, err)
	}
	if objs := f.objects(t, "outputs"); len(objs) != 0 {
		t.Errorf("objects left after a failed job: %v", keys(objs))
	}
	if f.count("delete") == 0 {
		t.Error("the uploaded first file was not deleted")
	}
}

func TestGCSCancelled(t *testing.T) {
	f := newFakeGCS(t, "outputs")
	g := newTestGCS(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel while the upload is in flight.
	f.setHook(func(r *http.Request) fault {
		if requestKind(r) == "upload" {
			cancel()
			return fail503
		}
		return pass
	})
	p := writeOutput(t, t.TempDir(), "a.png", randomBytes(t, 600<<10))
	_, err := g.Upload(ctx, UploadRequest{JobID: "j", Files: []Local{{Filename: "a.png", Path: p}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if objs := f.objects(t, "outputs"); len(objs) != 0 {
		t.Errorf("objects left: %v", keys(objs))
	}
}

func TestGCSPublic(t *testing.T) {
	tests := []struct {
		name     string
		hook     func(*http.Request) fault
		wantWarn string
	}{
		{name: "ACL granted", hook: nil},
		{name: "uniform bucket refuses ACLs: a warning, not a failure", hook: func(r *http.Request) fault {
			if requestKind(r) == "acl" {
				return uniform400
			}
			return pass
		}, wantWarn: "uniform bucket-level access"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGCS(t, "outputs")
			g := newTestGCS(t, f, func(c *GCSConfig) { c.Public = true })
			f.setHook(tc.hook)
			var mu sync.Mutex
			var warns []string
			p := writeOutput(t, t.TempDir(), "a.png", []byte("png"))
			got, err := g.Upload(context.Background(), UploadRequest{JobID: "j", Files: []Local{{Filename: "a.png", Path: p}},
				Warn: func(m string) { mu.Lock(); warns = append(warns, m); mu.Unlock() }})
			if err != nil || len(got) != 1 {
				t.Fatalf("Upload = %v, %v", got, err)
			}
			o := f.objects(t, "outputs")["comfy/outputs/j/a.png"]
			public := slices.ContainsFunc(o.ACL, func(r storage.ACLRule) bool {
				return r.Entity == storage.AllUsers && r.Role == storage.RoleReader
			})
			if tc.wantWarn == "" {
				if !public || len(warns) != 0 {
					t.Errorf("ACL %v, warnings %v: want allUsers READER and no warning", o.ACL, warns)
				}
				return
			}
			if len(warns) != 1 || !strings.Contains(warns[0], tc.wantWarn) || !strings.Contains(warns[0], "GCS_SIGNED_URL_TTL") {
				t.Errorf("warnings %q, want one about %q", warns, tc.wantWarn)
			}
		})
	}
}
