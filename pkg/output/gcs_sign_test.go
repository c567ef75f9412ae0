package output

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestGCSSignedURL checks the V4 signed URL against GCS's documented
// algorithm, rebuilt here independently, and the test key's public half.
func TestGCSSignedURL(t *testing.T) {
	key := newTestKey(t)
	creds, err := ParseCredentialsValue(string(key.JSON))
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeGCS(t, "outputs")
	tests := []struct {
		name string
		ttl  time.Duration
		file string
	}{
		{name: "15 minutes", ttl: 15 * time.Minute, file: "ComfyUI_00001_.png"},
		{name: "7 days, non-ASCII name", ttl: MaxSignedURLTTL, file: "猫.webp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGCS(t, f, func(c *GCSConfig) { c.SignedURLTTL = tc.ttl; c.Credentials = creds })
			p := writeOutput(t, t.TempDir(), "out", []byte("data"))
			before := time.Now().UTC().Truncate(time.Second)
			got, err := g.Upload(context.Background(), UploadRequest{JobID: "job-9", Files: []Local{{NodeID: "3", Filename: tc.file, Path: p}}})
			after := time.Now().UTC()
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(got[0].SignedURL)
			if err != nil {
				t.Fatal(err)
			}
			wantPath := "/outputs/comfy/outputs/job-9/3_" + tc.file
			if u.Scheme != "https" || u.Host != "storage.googleapis.com" || u.Path != wantPath {
				t.Fatalf("signed URL %s: want https://storage.googleapis.com%s", u.Redacted(), wantPath)
			}
			q := u.Query()
			if q.Get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256" || q.Get("X-Goog-SignedHeaders") != "host" {
				t.Errorf("query %v", q)
			}
			// At GCS's 7-day maximum there is no room to round up; one
			// second less is what the library can sign.
			want := int(tc.ttl.Seconds())
			if tc.ttl == MaxSignedURLTTL {
				want--
			}
			if q.Get("X-Goog-Expires") != fmt.Sprint(want) {
				t.Errorf("X-Goog-Expires %q, want %d", q.Get("X-Goog-Expires"), want)
			}
			date, err := time.Parse("20060102T150405Z", q.Get("X-Goog-Date"))
			if err != nil || date.Before(before) || date.After(after) {
				t.Errorf("X-Goog-Date %q not within the upload (%v..%v)", q.Get("X-Goog-Date"), before, after)
			}
			scope := date.Format("20060102") + "/auto/storage/goog4_request"
			if q.Get("X-Goog-Credential") != key.Email+"/"+scope {
				t.Errorf("X-Goog-Credential %q", q.Get("X-Goog-Credential"))
			}
			if err := verifyV4(u, key.Pub); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// verifyV4 rebuilds the canonical request and string to sign of a V4
// query-string signed GET and checks the signature with pub.
func verifyV4(u *url.URL, pub *rsa.PublicKey) error {
	q := u.Query()
	sig, err := hex.DecodeString(q.Get("X-Goog-Signature"))
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("bad X-Goog-Signature")
	}
	var params []string
	for k, vs := range q {
		if k == "X-Goog-Signature" {
			continue
		}
		for _, v := range vs {
			params = append(params, escapeV4(k)+"="+escapeV4(v))
		}
	}
	sort.Strings(params)
	canonical := strings.Join([]string{
		"GET",
		u.EscapedPath(),
		strings.Join(params, "&"),
		"host:" + u.Host,
		"",
		"host",
		"UNSIGNED-PAYLOAD",
	}, "\n")
	ch := sha256.Sum256([]byte(canonical))
	cred := strings.SplitN(q.Get("X-Goog-Credential"), "/", 2)
	toSign := "GOOG4-RSA-SHA256\n" + q.Get("X-Goog-Date") + "\n" + cred[1] + "\n" + hex.EncodeToString(ch[:])
	sh := sha256.Sum256([]byte(toSign))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sh[:], sig); err != nil {
		return fmt.Errorf("signature does not verify against the test key: %w\ncanonical request:\n%s", err, canonical)
	}
	return nil
}

// escapeV4 is RFC 3986 percent-encoding, as GCS's canonical query uses.
func escapeV4(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func TestGCSSignFailsBeforeUploading(t *testing.T) {
	f := newFakeGCS(t, "outputs")
	// Default credentials with nothing to sign with: the client finds no
	// key and asks the metadata server for a service account. Point that
	// look-up at a local server that has none (it must never leave this
	// machine). Signing fails, and must fail the job before any upload.
	md := httptest.NewServer(http.NotFoundHandler())
	defer md.Close()
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
	g := newTestGCS(t, f, func(c *GCSConfig) { c.SignedURLTTL = time.Hour })
	p := writeOutput(t, t.TempDir(), "a.png", []byte("x"))
	_, err := g.Upload(context.Background(), UploadRequest{JobID: "j", Files: []Local{{Filename: "a.png", Path: p}}})
	var se *SignError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "service-account key") {
		t.Fatalf("error %v, want a *SignError explaining the key", err)
	}
	if n := f.count("upload"); n != 0 {
		t.Errorf("%d upload requests before signing failed", n)
	}
}
