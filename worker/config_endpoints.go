package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/runpod-comfy/worker/internal/redact"
)

// modelEndpoints are the download hosts of hf:// and civitai:// sources,
// so that a mirror or an air-gapped proxy can serve them, as
// COMFY_GIT_REWRITE does for git. HF_ENDPOINT is the variable Hugging
// Face's own tools read; CIVITAI_ENDPOINT follows its pattern. Empty means
// the public service. The service's token goes to its endpoint's host.
type modelEndpoints struct {
	HF      string
	Civitai string
}

func loadModelEndpoints(getenv func(string) string) (modelEndpoints, error) {
	var e modelEndpoints
	var err error
	if e.HF, err = endpointURL("HF_ENDPOINT", getenv("HF_ENDPOINT")); err != nil {
		return e, err
	}
	if e.Civitai, err = endpointURL("CIVITAI_ENDPOINT", getenv("CIVITAI_ENDPOINT")); err != nil {
		return e, err
	}
	return e, nil
}

// endpointURL accepts an http(s) base URL, with an optional path prefix
// (https://proxy.local/hf), and returns it without a trailing slash.
func endpointURL(name, raw string) (string, error) {
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
