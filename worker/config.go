package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/runpod-comfy/worker/internal/envconf"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/version"
	"google.golang.org/api/option"
)

// config is everything the process reads from its environment, read once
// at start-up and passed down; packages never call os.Getenv.
type config struct {
	VersionsDir string
	// ExtraVersionsDirs are searched after VersionsDir
	// (COMFY_EXTRA_VERSIONS_DIRS, a PATH-style list).
	ExtraVersionsDirs []string
	Cache             cache.Env
	ComfyHome         string
	ModelsDir         string
	WheelsDir         string
	Offline           bool

	HFToken      string
	CivitaiToken string
	// HFEndpoint and CivitaiEndpoint (HF_ENDPOINT, Hugging Face's own
	// variable, and CIVITAI_ENDPOINT) serve hf:// and civitai:// from a
	// mirror, as COMFY_GIT_REWRITE does for git.
	HFEndpoint, CivitaiEndpoint string
	// RunPod API keys, GCS and S3 keys passed as values, the Comfy.org
	// API key: never logged.
	RunpodKeys []string
	// GitRewrites redirect repository URLs (mirrors, air-gapped hosts):
	// COMFY_GIT_REWRITE="https://github.com/=https://mirror.local/gh/".
	GitRewrites []gitsrc.Rewrite

	// BufferedModelWrites keeps model downloads in the page cache even on
	// a local disk (COMFY_MODEL_DIRECT_IO=0).
	BufferedModelWrites bool
	Local               version.LocalConfig // COMFY_LOCAL_*

	LogLevel  string
	LogFormat string
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		VersionsDir:       firstNonEmpty(getenv("COMFY_VERSIONS_DIR"), "versions"),
		ExtraVersionsDirs: filepath.SplitList(getenv("COMFY_EXTRA_VERSIONS_DIRS")),
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
		Offline:      envconf.Truthy(getenv("COMFY_OFFLINE")) || envconf.Truthy(getenv("COMFY_OFFLINE_MODE")),
		HFToken:      firstNonEmpty(getenv("HF_TOKEN"), getenv("HUGGINGFACE_TOKEN")),
		CivitaiToken: getenv("CIVITAI_TOKEN"),
		RunpodKeys: []string{getenv("RUNPOD_AI_API_KEY"), getenv("RUNPOD_API_KEY"), getenv("GCS_CREDENTIALS_JSON"), getenv("GOOGLE_CREDENTIALS_JSON"),
			getenv("BUCKET_SECRET_ACCESS_KEY"), getenv("S3_SECRET_ACCESS_KEY"), getenv("AWS_SECRET_ACCESS_KEY"),
			getenv("S3_SESSION_TOKEN"), getenv("AWS_SESSION_TOKEN"), getenv("COMFY_ORG_API_KEY")},
		LogLevel:            getenv("COMFY_LOG_LEVEL"),
		BufferedModelWrites: envconf.Falsy(getenv("COMFY_MODEL_DIRECT_IO")),
		LogFormat:           getenv("COMFY_LOG_FORMAT"),
	}
	var err error
	if c.Local, err = version.LocalFromEnv(getenv, os.TempDir()); err != nil {
		return c, usageErr(err)
	}
	rw, err := parseRewrites(getenv("COMFY_GIT_REWRITE"))
	if err != nil {
		return c, err
	}
	c.GitRewrites = rw
	if c.HFEndpoint, err = models.CheckEndpoint("HF_ENDPOINT", getenv("HF_ENDPOINT")); err != nil {
		return c, err
	}
	if c.CivitaiEndpoint, err = models.CheckEndpoint("CIVITAI_ENDPOINT", getenv("CIVITAI_ENDPOINT")); err != nil {
		return c, err
	}
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

// versionConfig is the version pipeline's configuration: the environment,
// with a command's realize flags (when given) on top.
func (a *app) versionConfig(f *realizeFlags) version.Config {
	c := a.cfg
	vc := version.Config{
		VersionsDir: c.VersionsDir, ExtraSpecDirs: c.ExtraVersionsDirs, Volume: c.Cache.Volume,
		CacheRoot: c.Cache.CacheRoot(), BuildsRoot: c.Cache.BuildsRoot(), Target: c.ComfyHome,
		ModelsDir: firstNonEmpty(c.ModelsDir, c.Cache.ModelsDir()), WheelsDir: c.WheelsDir, Offline: c.Offline,
		HFToken: c.HFToken, CivitaiToken: c.CivitaiToken, GitRewrites: c.GitRewrites,
		HFEndpoint: c.HFEndpoint, CivitaiEndpoint: c.CivitaiEndpoint,
		BufferedModelWrites: c.BufferedModelWrites, Logger: a.log, Local: c.Local,
		Display: func() (progress.Func, func()) {
			ui, stop := a.showProgress()
			return ui.Report, stop
		},
		// gs:// model sources use the same GCS key as outputs when one was
		// pasted into an env value; otherwise the client's default lookup.
		ModelGCS: func() ([]option.ClientOption, error) {
			ge, _, err := output.GCSFromEnv(a.getenv)
			if err != nil || ge.Credentials.Value == "" {
				return nil, nil
			}
			creds, err := output.LoadCredentials(ge.Credentials)
			if err != nil {
				return nil, err
			}
			return creds.ClientOptions(), nil
		},
	}
	if f != nil {
		vc.Target = firstNonEmpty(f.target, vc.Target)
		vc.ModelsDir = firstNonEmpty(f.modelsDir, vc.ModelsDir)
		vc.WheelsDir = firstNonEmpty(f.wheelsDir, vc.WheelsDir)
		vc.Offline = vc.Offline || f.offline
		vc.Update = f.update
		vc.Jobs = f.jobs
	}
	return vc
}
