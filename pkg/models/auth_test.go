package models

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/models/modeltest"
)

const (
	hfTok  = "hf_TESTtokenVALUE123"
	civTok = "civTESTtokenVALUE456"
)

func TestRequestAuthByHost(t *testing.T) {
	env := newTestStore(t, func(c *Config) {
		c.HFToken, c.CivitaiToken = hfTok, civTok
		c.HFEndpoint = "http://127.0.0.1:1"
		c.CivitaiEndpoint = "http://127.0.0.1:2/"
	})
	tests := []struct {
		src, wantURL, wantAuth string
	}{
		{"hf://org/repo/sub/f.bin", "http://127.0.0.1:1/org/repo/resolve/main/sub/f.bin", "Bearer " + hfTok},
		{"hf://datasets/org/d@refs%2Fpr%2F1/x y.bin", "http://127.0.0.1:1/datasets/org/d/resolve/refs%2Fpr%2F1/x%20y.bin", "Bearer " + hfTok},
		{"civitai://api/download/models/5?type=Model&format=SafeTensor", "http://127.0.0.1:2/api/download/models/5?format=SafeTensor&type=Model", "Bearer " + civTok},
		{"https://huggingface.co/o/r/resolve/main/f", "https://huggingface.co/o/r/resolve/main/f", "Bearer " + hfTok},
		{"https://HF.co/o/r/resolve/main/f", "https://hf.co/o/r/resolve/main/f", "Bearer " + hfTok},
		{"https://cdn-lfs.huggingface.co/x", "https://cdn-lfs.huggingface.co/x", "Bearer " + hfTok},
		{"https://civitai.com/api/download/models/9", "https://civitai.com/api/download/models/9", "Bearer " + civTok},
		{"https://huggingface.co.evil.example/o/r/f", "https://huggingface.co.evil.example/o/r/f", ""},
		{"https://nothuggingface.co/f", "https://nothuggingface.co/f", ""},
		{"https://example.com/f", "https://example.com/f", ""},
		{"http://127.0.0.1:3/f", "http://127.0.0.1:3/f", ""},
	}
	for _, tt := range tests {
		src, err := ParseSource(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		req, err := env.st.newRequest(context.Background(), src, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if req.URL.String() != tt.wantURL {
			t.Errorf("%s: URL %s, want %s", tt.src, req.URL, tt.wantURL)
		}
		if got := req.Header.Get("Authorization"); got != tt.wantAuth {
			t.Errorf("%s: Authorization %q, want %q", tt.src, got, tt.wantAuth)
		}
		if req.Header.Get("Range") != "" {
			t.Errorf("%s: Range on a fresh download", tt.src)
		}
	}
	src, _ := ParseSource("hf://o/r/f")
	req, _ := env.st.newRequest(context.Background(), src, 42, `"etag"`)
	if req.Header.Get("Range") != "bytes=42-" || req.Header.Get("If-Range") != `"etag"` {
		t.Errorf("resume headers: %v", req.Header)
	}
}

// The HF endpoint answers with a redirect to a CDN on another host, as
// huggingface.co does: the CDN must not see the token.
func TestTokenNotForwardedOnRedirect(t *testing.T) {
	hf, cdn := modeltest.NewServer(), modeltest.NewServer()
	defer hf.Close()
	defer cdn.Close()
	data, digest := testData(1<<20, 4)
	cdn.Add("/blob", data)
	hf.Add("/org/repo/resolve/main/m.bin", nil)
	hf.Faults("/org/repo/resolve/main/m.bin", modeltest.Fault{RedirectTo: cdn.Path("blob") + "?X-Amz-Signature=abc"})
	env := newTestStore(t, func(c *Config) { c.HFToken, c.HFEndpoint = hfTok, hf.URL })

	b, err := env.st.Fetch(testCtx(t), Request{Source: "hf://org/repo/m.bin", SHA256: digest})
	if err != nil {
		t.Fatal(err)
	}
	if b.SHA256 != digest {
		t.Fatalf("digest %s", b.SHA256)
	}
	if got := hf.Requests("")[0].Authorization; got != "Bearer "+hfTok {
		t.Errorf("HF endpoint got Authorization %q", got)
	}
	for _, r := range cdn.Requests("") {
		if r.Authorization != "" {
			t.Errorf("CDN got Authorization %q", r.Authorization)
		}
	}
}

func TestGatedRepoHint(t *testing.T) {
	tests := []struct {
		token, wantHint string
	}{
		{"", "set HF_TOKEN"},
		{"hf_wrongTOKENvalue", "has no access"},
	}
	for _, tt := range tests {
		srv := modeltest.NewServer()
		srv.Add("/org/gated/resolve/main/m.bin", []byte("x"))
		srv.RequireToken(hfTok)
		env := newTestStore(t, func(c *Config) { c.HFToken, c.HFEndpoint = tt.token, srv.URL })
		_, err := env.st.Fetch(testCtx(t), Request{Source: "hf://org/gated/m.bin"})
		srv.Close()
		var he *HTTPError
		if !errors.As(err, &he) || he.StatusCode != 401 || !strings.Contains(err.Error(), tt.wantHint) {
			t.Errorf("token %q: err = %v, want 401 with %q", tt.token, err, tt.wantHint)
		}
		if tt.token != "" && strings.Contains(err.Error(), tt.token) {
			t.Errorf("error leaks the token: %v", err)
		}
	}
}

// Tokens must not reach logs, errors, progress events, index files or
// returned blobs, whatever fails.
func TestSecretsNeverLeak(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, _ := testData(512<<10, 5)
	const urlTok = "urlTOKENsecret789"
	for _, p := range []string{"/ok", "/org/r/resolve/main/f", "/api/download/models/1", "/drop", "/corrupt"} {
		srv.Add(p, data)
	}
	srv.Faults("/org/r/resolve/main/f", modeltest.Fault{Status: 403})
	srv.Faults("/api/download/models/1", modeltest.Fault{Status: 500}, modeltest.Fault{Status: 500}, modeltest.Fault{Status: 500}, modeltest.Fault{Status: 500})
	srv.Faults("/drop", modeltest.Fault{DropAfter: 1000})
	srv.Faults("/corrupt", modeltest.Fault{Corrupt: true})
	env := newTestStore(t, func(c *Config) {
		c.HFToken, c.CivitaiToken = hfTok, civTok
		c.HFEndpoint, c.CivitaiEndpoint = srv.URL, srv.URL
	})
	ctx := testCtx(t)
	var errs []error
	for _, req := range []Request{
		{Source: srv.Path("ok") + "?token=" + urlTok},
		{Source: "hf://org/r/f"},
		{Source: "civitai://models/1?token=" + urlTok},
		{Source: srv.Path("drop") + "?token=" + urlTok},
		{Source: srv.Path("corrupt") + "?token=" + urlTok, SHA256: strings.Repeat("0", 64)},
		{Source: "http://127.0.0.1:1/refused?token=" + urlTok},
		{Source: "https://user:" + urlTok + "@/bad"},
	} {
		b, err := env.st.Fetch(ctx, req)
		errs = append(errs, err)
		if blob, _ := json.Marshal(b); strings.Contains(string(blob), urlTok) {
			t.Errorf("blob leaks a token: %s", blob)
		}
	}
	_, err := env.st.FetchAll(ctx, []Request{{Source: "hf://org/r/f"}, {Source: srv.Path("corrupt") + "?token=" + urlTok, SHA256: strings.Repeat("1", 64)}}, 2)
	errs = append(errs, err)

	var text strings.Builder
	for _, err := range errs {
		if err != nil {
			text.WriteString(err.Error() + "\n")
		}
	}
	text.WriteString(env.logs.String())
	for _, e := range env.events.all() {
		text.WriteString(e.Item + " " + e.Message + "\n")
	}
	filepath.Walk(env.st.Dir(), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.Contains(p, "/sha256/") {
			b, _ := os.ReadFile(p)
			text.Write(b)
		}
		return nil
	})
	out := text.String()
	if !strings.Contains(out, "REDACTED") {
		t.Errorf("expected redacted URLs in the output:\n%s", out)
	}
	for _, secret := range []string{hfTok, civTok, urlTok} {
		if strings.Contains(out, secret) {
			t.Errorf("%q leaked:\n%s", secret, out)
		}
	}
}
