package models

import (
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/models/modeltest"
)

// A 404 explains itself in the terms of the service that answered: a
// Civitai user is never told about Hugging Face repositories, and the
// other way round.
func TestNotFoundHintNamesTheService(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	tests := []struct {
		name, source string
		hfToken      string
		want, never  []string
	}{
		{"civitai", "civitai://models/4384?modelVersionId=128713", "",
			[]string{"Civitai", "modelVersionId"}, []string{"Hugging Face", "HF_TOKEN", "repository"}},
		{"hf without token", "hf://org/repo/missing.safetensors", "",
			[]string{"repository, revision and path", "HF_TOKEN"}, []string{"Civitai"}},
		{"hf with token", "hf://org/repo/missing.safetensors", hfTok,
			[]string{"repository, revision and path"}, []string{"Civitai", "without HF_TOKEN"}},
		{"other host", srv.Path("missing.bin"), "",
			[]string{"check the URL"}, []string{"Civitai", "Hugging Face"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestStore(t, func(c *Config) {
				// Only the service under test is served by srv.
				c.HFEndpoint, c.CivitaiEndpoint, c.HFToken = "http://127.0.0.1:1", "http://127.0.0.1:2", tt.hfToken
				switch {
				case strings.HasPrefix(tt.source, "civitai:"):
					c.CivitaiEndpoint = srv.URL + "/"
				case strings.HasPrefix(tt.source, "hf:"):
					c.HFEndpoint = srv.URL
				}
			})
			_, err := env.st.Fetch(testCtx(t), Request{Source: tt.source})
			if err == nil {
				t.Fatal("fetch of a missing file succeeded")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(msg, n) {
					t.Errorf("error %q mentions %q", msg, n)
				}
			}
		})
	}
}

// One mirror host serving both services under two prefixes: each request
// carries its own service's token.
func TestSharedMirrorHostTokens(t *testing.T) {
	env := newTestStore(t, func(c *Config) {
		c.HFToken, c.CivitaiToken = hfTok, civTok
		c.HFEndpoint, c.CivitaiEndpoint = "https://mirror.local/hf", "https://mirror.local/civitai"
	})
	for _, tc := range []struct{ src, want string }{
		{"hf://org/repo/a.safetensors", "Bearer " + hfTok},
		{"civitai://models/42", "Bearer " + civTok},
		{"https://mirror.local/other/file.bin", ""},
	} {
		src, err := ParseSource(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		req, err := env.st.newRequest(testCtx(t), src, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get("Authorization"); got != tc.want {
			t.Errorf("%s -> %s: Authorization %q, want %q", tc.src, req.URL, got, tc.want)
		}
	}
}
