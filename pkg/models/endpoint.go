package models

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/runpod-comfy/worker/internal/redact"
)

// CheckEndpoint validates the base URL of a mirror of Hugging Face or
// Civitai (HF_ENDPOINT, CIVITAI_ENDPOINT, named by name in errors): http(s),
// a host, an optional path prefix (https://proxy.local/hf), no
// credentials. It returns it without a trailing slash; "" stays "" (the
// public service).
func CheckEndpoint(name, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || strings.HasSuffix(u.Host, ":") ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%s: %q is not a base URL: want http(s)://host[:port][/path] without credentials, e.g. https://hf-mirror.example.com", name, redact.URL(raw))
	}
	return strings.TrimRight(raw, "/"), nil
}
