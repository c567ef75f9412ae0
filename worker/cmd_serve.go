package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/envconf"
	"github.com/runpod-comfy/worker/internal/memtrim"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/job"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/runpod"
)

// serveFlags are the official SDK's command-line flags for local runs.
type serveFlags struct {
	testInput      string
	serveAPI       bool
	apiHost        string
	apiPort        int
	logLevel       string
	apiConcurrency int
	debugger       bool
}

func (f *serveFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.testInput, "test_input", "", "run one job with this JSON input (like the RunPod SDK), then exit")
	fl.BoolVar(&f.serveAPI, "rp_serve_api", false, "serve the local /run, /runsync, /status API (like the RunPod SDK)")
	fl.StringVar(&f.apiHost, "rp_api_host", runpod.DefaultAPIHost, "host for --rp_serve_api")
	fl.IntVar(&f.apiPort, "rp_api_port", runpod.DefaultAPIPort, "port for --rp_serve_api")
	fl.StringVar(&f.logLevel, "rp_log_level", "", "log level: ERROR, WARN, INFO or DEBUG (the SDK's flag; --log-level wins)")
	// Accepted so that command lines written for the SDK keep working: one
	// ComfyUI runs one job at a time, and results carry timings already.
	fl.IntVar(&f.apiConcurrency, "rp_api_concurrency", 1, "accepted for the SDK's command line; jobs run one at a time")
	fl.BoolVar(&f.debugger, "rp_debugger", false, "accepted for the SDK's command line; results always carry timings_ms")
}

// serve is `worker` without a subcommand, choosing its mode as the SDK
// does: the local API with --rp_serve_api, or on 0.0.0.0:RUNPOD_REALTIME_PORT
// when that is set; one local job from --test_input (even on RunPod) or,
// without RUNPOD_WEBHOOK_GET_JOB, from ./test_input.json; else the RunPod
// job loop.
func (a *app) serve(cmd *cobra.Command, f serveFlags) error {
	ctx := cmd.Context()
	rp, err := runpod.ConfigFromEnv(a.getenv)
	if err != nil {
		return usageErr(err)
	}
	// The modes that run on RunPod wait for the network volume before
	// anything reads from it (a GCS key file, versions, the cache).
	mode := runpod.ChooseMode(rp, f.serveAPI, cmd.Flags().Changed("test_input"))
	var noVolume string
	if mode.OnRunPod() {
		if noVolume, err = a.waitForVolume(ctx); err != nil {
			return err
		}
	}
	h, err := a.jobHandler(a.manager(nil))
	if err != nil {
		return err
	}
	h.Notify(noVolume)
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		h.Close(stopCtx)
	}()
	if mode != runpod.ModeOneJob {
		w, err := a.prewarmConfig()
		if err != nil {
			return err
		}
		if w != nil {
			defer h.StartPrewarm(ctx, w.VersionID, w.Workflow)()
		} else if id := a.getenv("COMFY_VERSION_NAME"); id != "" {
			defer h.StartCopy(ctx, id)()
		}
	}
	if f.apiConcurrency > 1 || rp.RealtimeConcurrency > 1 {
		a.log.Warn().Int("rp_api_concurrency", f.apiConcurrency).Int("realtime_concurrency", rp.RealtimeConcurrency).
			Msg("jobs run one at a time on this worker's ComfyUI; --rp_api_concurrency and RUNPOD_REALTIME_CONCURRENCY are ignored")
	}
	err = runpod.Serve(ctx, mode, runpodHandler(h), rp, runpod.ServeOptions{
		APIHost: f.apiHost, APIHostSet: cmd.Flags().Changed("rp_api_host"), APIPort: f.apiPort,
		TestInput: f.testInput, Out: a.stdout, Started: func() { trimMemory(a) },
	}, runpod.WithLogger(a.log))
	var ce *runpod.ConfigError
	switch {
	case errors.Is(err, runpod.ErrJobFailed):
		return silentFailure{}
	case errors.As(err, &ce):
		return usageErr(err)
	}
	return err
}

// waitForVolume holds a serverless worker until its network volume is
// mounted (RUNPOD_VOLUME_WAIT seconds, default 60), unless nothing lives
// there. Without it the worker runs on the container disk: the warning
// says so, in the log and in the first job's result.
func (a *app) waitForVolume(ctx context.Context) (warning string, err error) {
	env := &envconf.Reader{Getenv: a.getenv}
	wait := env.Seconds("RUNPOD_VOLUME_WAIT", 60*time.Second)
	if env.Err() != nil {
		return "", usageErr(env.Err())
	}
	paths := append([]string{a.cfg.ModelsDir, a.cfg.ComfyHome, a.cfg.WheelsDir, a.cfg.VersionsDir, env.Str("GOOGLE_APPLICATION_CREDENTIALS")},
		a.cfg.ExtraVersionsDirs...)
	_, warning, err = cache.VolumeWait{Env: a.cfg.Cache, Paths: paths, Timeout: wait, Waiting: func(vol string, max time.Duration) {
		a.log.Info().Str("volume", vol).Int64("max_wait_ms", max.Milliseconds()).Msg("waiting for the network volume")
	}}.Wait(ctx)
	if warning != "" {
		a.log.Warn().Msg(warning)
	}
	return warning, err
}

// trimMemory gives back the binary's start-up pages before the worker
// idles in its job loop (see internal/memtrim).
func trimMemory(a *app) {
	if _, err := memtrim.ExecutablePages(); err != nil {
		a.log.Debug().Err(err).Msg("memtrim")
	}
}

// silentFailure exits 1 (2 with usage set) without another log line: the
// failure was already reported (the job's result is on stdout).
type silentFailure struct{ usage bool }

func (silentFailure) Error() string { return "" }

// idle pages the binary's code out between jobs.
var idle memtrim.Idle

// runpodHandler adapts the job handler to the RunPod worker.
func runpodHandler(h *job.Handler) runpod.Handler {
	return func(ctx context.Context, j runpod.Job, p runpod.Progress) runpod.Result {
		idle.Busy()
		defer idle.Done()
		out := h.Handle(ctx, j.ID, j.Input, p.Update)
		if out.Failure != nil {
			return runpod.Result{Error: out.Failure.Message, Output: out.Failure.Output()}
		}
		return runpod.Result{Output: out.Output}
	}
}

// jobHandler wires the job handler around the versions it prepares:
// ComfyUI on loopback, scratch on local disk.
func (a *app) jobHandler(versions job.Versions) (*job.Handler, error) {
	env := &envconf.Reader{Getenv: a.getenv}
	cfg := job.Config{
		Versions:      versions,
		Scratch:       firstNonEmpty(env.Str("COMFY_SCRATCH_DIR"), filepath.Join(os.TempDir(), fmt.Sprintf("comfy-worker-%d", os.Getpid()))),
		AutoThreshold: env.Bytes("OUTPUT_AUTO_THRESHOLD"),
		Comfy:         comfy.Config{Logger: a.log, StartTimeout: env.Seconds("COMFY_STARTUP_TIMEOUT", 0), ExtraArgs: strings.Fields(env.Str("COMFY_EXTRA_ARGS"))},
		Defaults: job.Defaults{
			VersionID: env.Str("COMFY_VERSION_NAME"), OutputMode: env.Str("OUTPUT_MODE"),
			GCSBucket: env.Str("GCS_BUCKET"), GCSPrefix: env.Str("GCS_PREFIX"),
			Timeout:    jobTimeout(env),
			MaxTimeout: env.Seconds("COMFY_MAX_JOB_TIMEOUT", 0),
			// worker-comfyui's clients need not name their result shape.
			ResponseFormat: strings.TrimSpace(env.Str("RESPONSE_FORMAT")),
			ComfyOrgAPIKey: env.Str("COMFY_ORG_API_KEY"),
		},
		Logger: a.log,
	}
	if env.Err() != nil {
		return nil, usageErr(env.Err())
	}
	if f := cfg.Defaults.ResponseFormat; !output.ValidFormat(f) {
		return nil, usageErr(fmt.Errorf("RESPONSE_FORMAT=%q: use %q, %q or %q", f, output.FormatDefault, output.FormatOriginal, output.FormatWorkerComfyUI))
	}
	creds, err := a.stores(context.Background(), &cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Fetch, err = a.urlFetcher(creds); err != nil {
		return nil, err
	}
	return job.New(cfg)
}

// jobTimeout is COMFY_JOB_TIMEOUT, else the original tool's
// COMFY_RESPOND_TIMEOUT, which bounded the same wait; 0 for none.
func jobTimeout(env *envconf.Reader) time.Duration {
	key := "COMFY_JOB_TIMEOUT"
	if env.Str(key) == "" {
		key = "COMFY_RESPOND_TIMEOUT"
	}
	return env.Seconds(key, 0)
}
