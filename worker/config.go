package main

import (
	"fmt"
	"strings"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
)

// config is everything the process reads from its environment, read once
// at start-up and passed down; packages never call os.Getenv.
type config struct {
	VersionsDir string
	Cache       cache.Env
	ComfyHome   string
	ModelsDir   string
	WheelsDir   string
	Offline     bool

	HFToken      string
	CivitaiToken string
	// RunPod API keys, GCS and S3 keys passed as values, the Comfy.org
	// API key: never logged.
	RunpodKeys []string
	// GitRewrites redirect repository URLs (mirrors, air-gapped hosts):
	// COMFY_GIT_REWRITE="https://github.com/=https://mirror.local/gh/".
	GitRewrites []gitsrc.Rewrite

	// BufferedModelWrites keeps model downloads in the page cache even on
	// a local disk (COMFY_MODEL_DIRECT_IO=0).
	BufferedModelWrites bool

	LogLevel  string
	LogFormat string
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func falsy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "false", "no", "off":
		return true
	}
	return false
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		VersionsDir: firstNonEmpty(getenv("COMFY_VERSIONS_DIR"), "versions"),
		Cache: cache.Env{
			// The original tool's aliases keep old deployments working.
			CacheDir:     firstNonEmpty(getenv("COMFY_CACHE_ROOT"), getenv("RUNPOD_COMFY_CACHE"), getenv("COMFY_CACHE")),
			BuildsDir:    getenv("COMFY_BUILDS_ROOT"),
			XDGCacheHome: getenv("XDG_CACHE_HOME"),
			Home:         getenv("HOME"),
			Volume:       getenv("RUNPOD_VOLUME_ROOT"),
		},
		ComfyHome:    getenv("COMFY_HOME"),
		ModelsDir:    getenv("MODELS_DIR"),
		WheelsDir:    getenv("COMFY_WHEELS_DIR"),
		Offline:      truthy(getenv("COMFY_OFFLINE")) || truthy(getenv("COMFY_OFFLINE_MODE")),
		HFToken:      firstNonEmpty(getenv("HF_TOKEN"), getenv("HUGGINGFACE_TOKEN")),
		CivitaiToken: getenv("CIVITAI_TOKEN"),
		RunpodKeys: []string{getenv("RUNPOD_AI_API_KEY"), getenv("RUNPOD_API_KEY"), getenv("GCS_CREDENTIALS_JSON"), getenv("GOOGLE_CREDENTIALS_JSON"),
			getenv("BUCKET_SECRET_ACCESS_KEY"), getenv("S3_SECRET_ACCESS_KEY"), getenv("AWS_SECRET_ACCESS_KEY"),
			getenv("S3_SESSION_TOKEN"), getenv("AWS_SESSION_TOKEN"), getenv("COMFY_ORG_API_KEY")},
		LogLevel:            getenv("COMFY_LOG_LEVEL"),
		BufferedModelWrites: falsy(getenv("COMFY_MODEL_DIRECT_IO")),
		LogFormat:           getenv("COMFY_LOG_FORMAT"),
	}
	rw, err := parseRewrites(getenv("COMFY_GIT_REWRITE"))
	if err != nil {
		return c, err
	}
	c.GitRewrites = rw
	return c, nil
}

// parseRewrites reads "from=to" pairs separated by commas or whitespace.
func parseRewrites(s string) ([]gitsrc.Rewrite, error) {
	var out []gitsrc.Rewrite
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		from, to, ok := strings.Cut(f, "=")
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("COMFY_GIT_REWRITE: %q is not FROM=TO", f)
		}
		out = append(out, gitsrc.Rewrite{From: from, To: to})
	}
	return out, nil
}

// secrets are the values the logger must never print.
func (c config) secrets() []string {
	return append([]string{c.HFToken, c.CivitaiToken}, c.RunpodKeys...)
}
