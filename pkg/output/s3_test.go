package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/rs/zerolog"
)

func newTestS3(t testing.TB, f *fakeS3, mut func(*S3Config)) *S3 {
	t.Helper()
	cfg := f.config("outputs")
	if mut != nil {
		mut(&cfg)
	}
	s, err := NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// s3Object reads an object straight from the fake's backend.
func (f *fakeS3) object(t testing.TB, bucket, key string) ([]byte, string, bool) {
	t.Helper()
	obj, err := f.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, "", false
	}
	defer obj.Contents.Close()
	data, err := io.ReadAll(obj.Contents)
	if err != nil {
		t.Fatal(err)
	}
	return data, obj.Metadata["Content-Type"], true
}

func (f *fakeS3) keys(t testing.TB, bucket string) []string {
	t.Helper()
	list, err := f.backend.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.Contents {
		out = append(out, c.Key)
	}
	slices.Sort(out)
	return out
}

func TestS3UploadNamesTypesBytesAndURLs(t *testing.T) {
	png := randomBytes(t, 300<<10)
	mp4 := randomBytes(t, 64<<10)
	for _, tc := range []struct {
		name      string
		pathStyle bool
		host      string // the endpoint's host name, "" for 127.0.0.1
		opts      []gofakes3.Option
		wantURL   func(base string) string // the unsigned URL of the first file
	}{
		{name: "path style", pathStyle: true,
			wantURL: func(base string) string { return base + "/outputs/runs/job-1/9_a.png" }},
		{name: "virtual-hosted", host: "s3.test", opts: []gofakes3.Option{gofakes3.WithHostBucketBase("s3.test")},
			wantURL: func(base string) string {
				u, _ := url.Parse(base)
				return "http://outputs.s3.test:" + u.Port() + "/runs/job-1/9_a.png"
			}},
		// An IP cannot carry a bucket subdomain: path style, as the SDK does.
		{name: "virtual-hosted asked on an IP", pathStyle: false,
			wantURL: func(base string) string { return base + "/outputs/runs/job-1/9_a.png" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeS3(t, tc.opts, "outputs")
			s := newTestS3(t, f, func(c *S3Config) {
				c.PathStyle, c.Prefix = tc.pathStyle, "runs"
				if tc.host != "" {
					u, _ := url.Parse(c.Endpoint)
					c.Endpoint = "http://" + tc.host + ":" + u.Port()
				}
			})
			dir := t.TempDir()
			files := []Local{
				{NodeID: "9", Kind: "images", Filename: "a.png", Path: writeOutput(t, dir, "a.png", png)},
				{NodeID: "12", Kind: "gifs", Filename: "clip.mp4", Subfolder: "vid", Data: mp4},
			}
			got, err := s.Upload(context.Background(), UploadRequest{JobID: "job-1", Files: files})
			if err != nil {
				t.Fatal(err)
			}
			want := []struct {
				key, ctype string
				data       []byte
			}{{"runs/job-1/9_a.png", "image/png", png}, {"runs/job-1/vid/12_clip.mp4", "video/mp4", mp4}}
			for i, w := range want {
				data, ctype, ok := f.object(t, "outputs", w.key)
				if !ok || !bytes.Equal(data, w.data) || ctype != w.ctype {
					t.Fatalf("object %s: found %v, %d bytes, type %q", w.key, ok, len(data), ctype)
				}
				sum := sha256.Sum256(w.data)
				g := got[i]
				if g.SHA256 != hex.EncodeToString(sum[:]) || g.Size != int64(len(w.data)) || g.S3Path != "s3://outputs/"+w.key || g.ContentType != w.ctype {
					t.Errorf("file %d: %+v", i, g)
				}
				// The presigned URL is what a client downloads: it must
				// pass the store's signature check and return the bytes.
				resp, err := f.client().Get(g.SignedURL)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Equal(body, w.data) {
					t.Errorf("GET presigned URL: %d, %d bytes", resp.StatusCode, len(body))
				}
			}
			if got[0].URL != tc.wantURL(f.ts.URL) {
				t.Errorf("url %s, want %s", got[0].URL, tc.wantURL(f.ts.URL))
			}
			// The requests went where the URL says.
			u, _ := url.Parse(tc.wantURL(f.ts.URL))
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.hosts[u.Host] || len(f.hosts) != 1 {
				t.Errorf("requests went to %v, want only %s", f.hosts, u.Host)
			}
		})
	}
}

func TestS3PresignedURL(t *testing.T) {
	f := newFakeS3(t, nil, "outputs")
	s := newTestS3(t, f, func(c *S3Config) { c.SignedURLTTL = 90 * time.Minute })
	got, err := s.Upload(context.Background(), UploadRequest{JobID: "j", Files: []Local{{NodeID: "1", Filename: "a.png", Data: []byte("png")}}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got[0].SignedURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("X-Amz-Expires") != "5400" || q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" || !strings.Contains(q.Get("X-Amz-Credential"), "/"+testS3Region+"/s3/") {
		t.Fatalf("presigned query %v", q)
	}
	get := func(u string) int {
		resp, err := f.client().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(got[0].SignedURL); code != 200 {
		t.Fatalf("presigned GET: %d", code)
	}
	// The fake verifies: a changed key, a changed signature and an
	// expired URL are refused, so the 200 above is a real check.
	tampered := strings.Replace(got[0].SignedURL, "1_a.png", "1_b.png", 1)
	if code := get(tampered); code != 403 {
		t.Errorf("GET with another key: %d, want 403", code)
	}
	f.now = func() time.Time { return time.Now().Add(91 * time.Minute) }
	if code := get(got[0].SignedURL); code != 403 {
		t.Errorf("GET after the TTL: %d, want 403", code)
	}
	// Without a TTL the URL is the plain object address.
	s2 := newTestS3(t, f, func(c *S3Config) { c.SignedURLTTL = 0 })
	f.now = time.Now
	got, err = s2.Upload(context.Background(), UploadRequest{JobID: "k", Files: []Local{{NodeID: "1", Filename: "a.png", Data: []byte("png")}}})
	if err != nil || got[0].SignedURL != "" || got[0].URL == "" {
		t.Fatalf("no TTL: %+v %v", got, err)
	}
}

// nthPut applies flt to the PUT requests whose 1-based index is in which.
func nthPut(flt s3Fault, which ...int) func(*http.Request) s3Fault {
	var mu sync.Mutex
	n := 0
	return func(r *http.Request) s3Fault {
		if r.Method != http.MethodPut {
			return s3Pass
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		if slices.Contains(which, n) {
			return flt
		}
		return s3Pass
	}
}

func allPuts(flt s3Fault) func(*http.Request) s3Fault {
	return func(r *http.Request) s3Fault {
		if r.Method == http.MethodPut {
			return flt
		}
		return s3Pass
	}
}

func TestS3Retries(t *testing.T) {
	data := randomBytes(t, 512<<10)
	tests := []struct {
		name    string
		hook    func(*http.Request) s3Fault
		wantErr string
		puts    int
	}{
		// Each retry sends the file again from its start; the reported
		// sha256 must still be the file's, not of the bytes read in all.
		{name: "500 twice", hook: nthPut(s3Fail500, 1, 2), puts: 3},
		{name: "throttled once", hook: nthPut(s3SlowDown, 1), puts: 2},
		{name: "connection dropped mid-body", hook: nthPut(s3Drop, 1), puts: 2},
		{name: "always 500: bounded attempts", hook: allPuts(s3Fail500), wantErr: "InternalError", puts: 3},
		{name: "403 is not retried", hook: allPuts(s3Deny), wantErr: "s3:PutObject", puts: 1},
		{name: "store keeps half", hook: nthPut(s3Truncate, 1), wantErr: "kept 262144 bytes of 524288", puts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeS3(t, nil, "outputs")
			s := newTestS3(t, f, func(c *S3Config) { c.MaxAttempts = 3 })
			f.setHook(tc.hook)
			p := writeOutput(t, t.TempDir(), "out.png", data)
			got, err := s.Upload(context.Background(), UploadRequest{JobID: "j", Files: []Local{{NodeID: "1", Filename: "out.png", Path: p}}})
			if n := f.count(http.MethodPut); n != tc.puts {
				t.Errorf("%d PUTs, want %d", n, tc.puts)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				stored, _, _ := f.object(t, "outputs", "comfy/outputs/j/1_out.png")
				sum := sha256.Sum256(data)
				if !bytes.Equal(stored, data) || got[0].SHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("stored %d bytes, sha %s", len(stored), got[0].SHA256)
				}
				return
			}
			var ue *S3UploadError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want an *S3UploadError mentioning %q", err, tc.wantErr)
			}
			if ue.Object != "comfy/outputs/j/1_out.png" || ue.Bucket != "outputs" || got != nil {
				t.Errorf("UploadError %+v, files %v", ue, got)
			}
			if keys := f.keys(t, "outputs"); len(keys) != 0 {
				t.Errorf("a failed upload left objects %v", keys)
			}
		})
	}
}

func TestS3FailedJobLeavesNothing(t *testing.T) {
	f := newFakeS3(t, nil, "outputs")
	s := newTestS3(t, f, func(c *S3Config) { c.Parallel = 1; c.MaxAttempts = 2 })
	dir := t.TempDir()
	files := []Local{
		{NodeID: "1", Filename: "a.png", Path: writeOutput(t, dir, "a.png", []byte("first"))},
		{NodeID: "2", Filename: "b.png", Path: writeOutput(t, dir, "b.png", []byte("second"))},
	}
	f.setHook(func(r *http.Request) s3Fault {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "b.png") {
			return s3Deny
		}
		return s3Pass
	})
	got, err := s.Upload(context.Background(), UploadRequest{JobID: "j", Files: files})
	if err == nil || got != nil {
		t.Fatalf("Upload = %v, %v; want an error and no files", got, err)
	}
	if keys := f.keys(t, "outputs"); len(keys) != 0 {
		t.Errorf("objects left after a failed job: %v", keys)
	}
	if f.count(http.MethodDelete) == 0 {
		t.Error("the uploaded first file was not deleted")
	}
}

func TestS3Cancelled(t *testing.T) {
	f := newFakeS3(t, nil, "outputs")
	s := newTestS3(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	f.setHook(func(r *http.Request) s3Fault {
		if r.Method == http.MethodPut {
			cancel()
			return s3Fail500
		}
		return s3Pass
	})
	_, err := s.Upload(ctx, UploadRequest{JobID: "j", Files: []Local{{Filename: "a.png", Data: randomBytes(t, 64<<10)}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if keys := f.keys(t, "outputs"); len(keys) != 0 {
		t.Errorf("objects left: %v", keys)
	}
}

// TestS3Errors: what an operator can fix is said, and the secret is in no
// error, log line or result, whatever happens.
func TestS3Errors(t *testing.T) {
	tests := []struct {
		name    string
		mut     func(*S3Config)
		bucket  string
		wantErr string
	}{
		{name: "wrong secret", mut: func(c *S3Config) { c.SecretAccessKey = "wrong-" + testS3Secret[:4] },
			wantErr: "SignatureDoesNotMatch"},
		{name: "unknown bucket", bucket: "nope", wantErr: "check S3_BUCKET"},
		{name: "monthly bucket missing", mut: func(c *S3Config) {
			c.Bucket, c.MonthlyBucket = "", true
			c.Now = func() time.Time { return time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC) }
		}, wantErr: "s3://12-26/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeS3(t, nil, "outputs")
			var logs bytes.Buffer
			s := newTestS3(t, f, func(c *S3Config) {
				c.MaxAttempts = 1
				c.Logger = zerolog.New(&logs).Level(zerolog.DebugLevel)
				if tc.mut != nil {
					tc.mut(c)
				}
			})
			got, err := s.Upload(context.Background(), UploadRequest{Bucket: tc.bucket, JobID: "j", Files: []Local{{NodeID: "1", Filename: "a.png", Data: []byte("x")}}})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			}
			res, _ := json.Marshal(got)
			for what, s := range map[string]string{"error": err.Error(), "log": logs.String(), "result": string(res)} {
				if strings.Contains(s, testS3Secret) || strings.Contains(s, testS3Secret[:8]) {
					t.Errorf("the secret appears in the %s: %s", what, s)
				}
			}
		})
	}
}

func TestS3MonthlyBucket(t *testing.T) {
	f := newFakeS3(t, nil, "12-26")
	s := newTestS3(t, f, func(c *S3Config) {
		c.Bucket, c.MonthlyBucket = "", true
		c.Now = func() time.Time { return time.Date(2026, 12, 31, 23, 0, 0, 0, time.FixedZone("x", -3*3600)) }
	})
	// 23:00 at UTC-3 is January in UTC: the month is UTC's, whatever the
	// machine's zone.
	if err := s.CheckBucket(""); err != nil {
		t.Fatal(err)
	}
	_, err := s.Upload(context.Background(), UploadRequest{JobID: "j", Files: []Local{{NodeID: "1", Filename: "a.png", Data: []byte("x")}}})
	if err == nil || !strings.Contains(err.Error(), "s3://01-27/") {
		t.Fatalf("upload to the monthly bucket: %v, want s3://01-27/", err)
	}
	s.cfg.Now = func() time.Time { return time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) }
	got, err := s.Upload(context.Background(), UploadRequest{JobID: "j", Files: []Local{{NodeID: "1", Filename: "a.png", Data: []byte("x")}}})
	if err != nil || got[0].S3Path != "s3://12-26/comfy/outputs/j/1_a.png" {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestS3Config(t *testing.T) {
	ok := S3Config{Endpoint: "https://s3.example.com", AccessKeyID: "a", SecretAccessKey: testS3Secret}
	tests := []struct {
		name    string
		mut     func(*S3Config)
		wantErr string
	}{
		{name: "fine"},
		{name: "no key", mut: func(c *S3Config) { c.SecretAccessKey = "" }, wantErr: "S3_SECRET_ACCESS_KEY"},
		{name: "endpoint without scheme", mut: func(c *S3Config) { c.Endpoint = "s3.example.com" }, wantErr: "https://s3.example.com"},
		{name: "endpoint with a key in it", mut: func(c *S3Config) { c.Endpoint = "https://a:" + testS3Secret + "@s3.example.com" }, wantErr: "no key in the URL"},
		{name: "bucket with a path", mut: func(c *S3Config) { c.Bucket = "b/x" }, wantErr: "contains a path"},
		{name: "bucket uppercase", mut: func(c *S3Config) { c.Bucket = "Outputs" }, wantErr: "invalid S3 bucket name"},
		{name: "TTL over 7 days", mut: func(c *S3Config) { c.SignedURLTTL = 8 * 24 * time.Hour }, wantErr: "7 days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			if tc.mut != nil {
				tc.mut(&cfg)
			}
			_, err := NewS3(cfg)
			if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewS3: %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testS3Secret) {
				t.Errorf("the secret appears in %v", err)
			}
		})
	}
	s, err := NewS3(S3Config{AccessKeyID: "a", SecretAccessKey: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckBucket(""); !errors.Is(err, ErrNoS3Bucket) {
		t.Errorf("CheckBucket with no bucket: %v", err)
	}
	if u := s.objectURL("b", "p/x y.png"); u != "https://b.s3.us-east-1.amazonaws.com/p/x%20y.png" {
		t.Errorf("AWS object URL %s", u)
	}
}

func TestS3RegionFromEndpoint(t *testing.T) {
	for endpoint, want := range map[string]string{
		// worker-comfyui's documented form: the bucket in the host.
		"https://my-bucket.s3.eu-west-2.amazonaws.com": "eu-west-2",
		"https://s3.us-west-004.backblazeb2.com":       "us-west-004",
		"https://s3-us-west-1.amazonaws.com":           "us-west-1",
		"https://s3.amazonaws.com":                     "",
		"https://nyc3.digitaloceanspaces.com":          "nyc3",
		"https://b.fra1.digitaloceanspaces.com":        "fra1",
		"https://s3api-eu-ro-1.runpod.io/":             "EU-RO-1",
		"https://s3api-us-ks-2.runpod.io":              "US-KS-2",
		"https://abc123.r2.cloudflarestorage.com":      "",
		"http://127.0.0.1:9000":                        "",
		"not a url":                                    "",
	} {
		if got := S3RegionFromEndpoint(endpoint); got != want {
			t.Errorf("S3RegionFromEndpoint(%q) = %q, want %q", endpoint, got, want)
		}
	}
}
