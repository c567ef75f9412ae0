package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/memtrim"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/job"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/realize"
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
	// Which mode, as the SDK decides it; the modes that run on RunPod wait
	// for the network volume before anything reads from it (a GCS key
	// file, versions, the cache).
	mode := modeJobLoop
	switch {
	case f.serveAPI:
		mode = modeLocalAPI
	case rp.RealtimePort != 0:
		mode = modeRealtime
	case rp.Local() || cmd.Flags().Changed("test_input"):
		mode = modeOneJob
	}
	var noVolume string
	if mode == modeJobLoop || mode == modeRealtime {
		if noVolume, err = a.waitForVolume(ctx); err != nil {
			return err
		}
	}
	h, err := a.jobHandlerWith(func(ctx context.Context, id string, p progress.Func) (*job.Build, error) {
		return a.prepare(ctx, id, p, realizeFlags{jobs: 4})
	})
	if err != nil {
		return err
	}
	h.Notify(noVolume)
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		h.Close(stopCtx)
	}()
	if mode != modeOneJob {
		id, wf, err := a.prewarmConfig()
		if err != nil {
			return err
		}
		if id != "" {
			defer a.startPrewarm(ctx, h, id, wf)()
		}
	}
	handler := runpodHandler(h)
	opts := []runpod.Option{runpod.WithLogger(a.log)}
	if f.apiConcurrency > 1 || rp.RealtimeConcurrency > 1 {
		a.log.Warn().Int("rp_api_concurrency", f.apiConcurrency).Int("realtime_concurrency", rp.RealtimeConcurrency).
			Msg("jobs run one at a time on this worker's ComfyUI; --rp_api_concurrency and RUNPOD_REALTIME_CONCURRENCY are ignored")
	}
	switch mode {
	case modeLocalAPI:
		a.log.Info().Str("addr", fmt.Sprintf("%s:%d", f.apiHost, f.apiPort)).Msg("serving the local RunPod API")
		return runpod.NewAPIServer(handler, rp, opts...).ListenAndServe(ctx, f.apiHost, f.apiPort)
	case modeRealtime:
		// All interfaces, as the SDK does; --rp_api_host narrows it.
		host := "0.0.0.0"
		if cmd.Flags().Changed("rp_api_host") {
			host = f.apiHost
		}
		a.log.Info().Str("addr", fmt.Sprintf("%s:%d", host, rp.RealtimePort)).Msg("RUNPOD_REALTIME_PORT is set: serving the RunPod API")
		return runpod.NewAPIServer(handler, rp, opts...).ListenAndServe(ctx, host, rp.RealtimePort)
	case modeOneJob:
		code := runpod.RunLocal(ctx, handler, runpod.LocalOptions{TestInput: f.testInput, Out: a.stdout, Config: rp}, opts...)
		if code != runpod.ExitOK {
			return silentFailure{}
		}
		return nil
	default:
		w, err := runpod.NewWorker(rp, handler, opts...)
		if err != nil {
			return usageErr(err)
		}
		a.log.Info().Msg("RunPod worker started")
		trimMemory(a)
		return w.Run(ctx)
	}
}

// The ways `worker` without a subcommand runs.
const (
	modeJobLoop = iota
	modeLocalAPI
	modeRealtime
	modeOneJob
)

// waitForVolume holds a serverless worker until its network volume is
// mounted (RUNPOD_VOLUME_WAIT seconds, default 60), unless nothing lives
// there. Without it the worker runs on the container disk: the warning
// says so, in the log and in the first job's result.
func (a *app) waitForVolume(ctx context.Context) (warning string, err error) {
	wait, err := envSeconds(a.getenv, "RUNPOD_VOLUME_WAIT", 60*time.Second)
	if err != nil {
		return "", err
	}
	paths := append([]string{a.cfg.ModelsDir, a.cfg.ComfyHome, a.cfg.WheelsDir, a.cfg.VersionsDir, a.getenv("GOOGLE_APPLICATION_CREDENTIALS")},
		filepath.SplitList(a.getenv("COMFY_EXTRA_VERSIONS_DIRS"))...)
	_, warning, err = cache.VolumeWait{Env: a.cfg.Cache, Paths: paths, Timeout: wait, Waiting: func(vol string, max time.Duration) {
		a.log.Info().Str("volume", vol).Dur("max_wait", max).Msg("waiting for the network volume")
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

// idleTrimmer pages the binary's code out once the worker has been idle
// for a while after a job: doing it right after a job would make the
// result's delivery fault the pages straight back in.
type idleTrimmer struct {
	mu    sync.Mutex
	jobs  int
	timer *time.Timer
}

var idle idleTrimmer

func (t *idleTrimmer) busy() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.jobs++
	if t.timer != nil {
		t.timer.Stop()
	}
}

func (t *idleTrimmer) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.jobs--
	if t.jobs == 0 {
		t.timer = time.AfterFunc(2*time.Second, func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.jobs == 0 {
				memtrim.ExecutablePages()
			}
		})
	}
}

// runpodHandler adapts the job handler to the RunPod worker.
func runpodHandler(h *job.Handler) runpod.Handler {
	return func(ctx context.Context, j runpod.Job, p runpod.Progress) runpod.Result {
		idle.busy()
		defer idle.done()
		out := h.Handle(ctx, j.ID, j.Input, p.Update)
		if out.Failure != nil {
			return runpod.Result{Error: out.Failure.Message, Output: out.Failure.Details}
		}
		return runpod.Result{Output: out.Output}
	}
}

// jobBuild is a realized version as the job handler runs it.
type jobBuild = job.Build

// jobHandlerWith wires the job handler around prepare (which finds and
// realizes versions): ComfyUI on loopback, scratch on local disk.
func (a *app) jobHandlerWith(prepare job.Preparer) (*job.Handler, error) {
	scratch := firstNonEmpty(a.getenv("COMFY_SCRATCH_DIR"), filepath.Join(os.TempDir(), fmt.Sprintf("comfy-worker-%d", os.Getpid())))
	timeout, err := jobTimeout(a.getenv)
	if err != nil {
		return nil, err
	}
	maxTimeout, err := envSeconds(a.getenv, "COMFY_MAX_JOB_TIMEOUT", 0)
	if err != nil {
		return nil, err
	}
	startTimeout, err := envSeconds(a.getenv, "COMFY_STARTUP_TIMEOUT", 0)
	if err != nil {
		return nil, err
	}
	gc, err := loadGCSConfig(a.getenv)
	if err != nil {
		return nil, err
	}
	var gcs job.Deliverer
	var creds *output.Credentials
	if gc.configured(a.getenv) {
		d, err := a.newGCSDeliverer(context.Background(), gc)
		if err != nil {
			return nil, err
		}
		gcs, creds = d, d.creds
	}
	fetch, err := a.urlFetcher(creds)
	if err != nil {
		return nil, err
	}
	var autoThreshold int64
	if v := a.getenv("OUTPUT_AUTO_THRESHOLD"); v != "" {
		if autoThreshold, err = strconv.ParseInt(v, 10, 64); err != nil || autoThreshold <= 0 {
			return nil, usageErr(fmt.Errorf("OUTPUT_AUTO_THRESHOLD=%q: want a number of bytes", v))
		}
	}
	return job.New(job.Config{
		Fetch:         fetch,
		GCS:           gcs,
		AutoThreshold: autoThreshold,
		Prepare:       prepare,
		Scratch:       scratch,
		Comfy:         comfy.Config{Logger: a.log, StartTimeout: startTimeout, ExtraArgs: strings.Fields(a.getenv("COMFY_EXTRA_ARGS"))},
		Defaults: job.Defaults{
			VersionID: a.getenv("COMFY_VERSION_NAME"), OutputMode: a.getenv("OUTPUT_MODE"),
			GCSBucket: a.getenv("GCS_BUCKET"), GCSPrefix: a.getenv("GCS_PREFIX"),
			Timeout: timeout, MaxTimeout: maxTimeout,
		},
		Logger: a.log,
	})
}

// jobTimeout is COMFY_JOB_TIMEOUT, else the original tool's
// COMFY_RESPOND_TIMEOUT, which bounded the same wait; 0 for none.
func jobTimeout(getenv func(string) string) (time.Duration, error) {
	key := "COMFY_JOB_TIMEOUT"
	if getenv(key) == "" && getenv("COMFY_RESPOND_TIMEOUT") != "" {
		key = "COMFY_RESPOND_TIMEOUT"
	}
	return envSeconds(getenv, key, 0)
}

func envSeconds(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v + "s")
	if err != nil || d < 0 {
		return 0, usageErr(fmt.Errorf("%s=%q: want a number of seconds", key, v))
	}
	return d, nil
}

// prepare finds a version, pins it and realizes it if needed; realize's
// locks make workers sharing a volume do the work once. A version prepared
// before is answered from memory while its spec, lock and build marker
// are unchanged on disk (three stats), keeping per-job overhead small.
func (a *app) prepare(ctx context.Context, id string, p progress.Func, f realizeFlags) (*job.Build, error) {
	if b := a.prepared.get(id); b != nil {
		realize.Touch(b.Dir) // the lease that keeps gc away from a build in use
		return b, nil
	}
	s, err := a.loadSpec(id)
	if err != nil {
		return nil, err
	}
	l, _, err := a.lockFor(ctx, s, f.offline, f.update)
	if err != nil {
		return nil, err
	}
	if f.jobs < 1 {
		f.jobs = 4
	}
	cfg, done, err := a.realizeConfig(s, l, f, p)
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := a.realize(ctx, cfg, l)
	if err != nil {
		return nil, err
	}
	b := &job.Build{
		VersionID: s.ID, Dir: res.BuildDir, Python: filepath.Join(res.BuildDir, ".venv", "bin", "python"),
		Env: l.Env, ComfyArgs: l.Options.ComfyArgs, Digest: realize.LockDigest(l),
	}
	// cfg.BuildDir is the version's pointer: a switch to another build is
	// a change too.
	a.prepared.put(id, b, s.File, a.lockPath(id), filepath.Join(res.BuildDir, realize.MarkerFile), cfg.BuildDir)
	return b, nil
}

// preparedCache remembers realized versions with the stat data of the
// files that decide them.
type preparedCache struct {
	mu      sync.Mutex
	entries map[string]preparedEntry
}

type preparedEntry struct {
	build *job.Build
	files []string
	stats []string
}

func statKey(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d/%v", st.Size(), st.ModTime().UnixNano(), st.Mode())
}

func (c *preparedCache) get(id string) *job.Build {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	for i, f := range e.files {
		if k := statKey(f); k == "" || k != e.stats[i] {
			return nil
		}
	}
	return e.build
}

func (c *preparedCache) put(id string, b *job.Build, files ...string) {
	e := preparedEntry{build: b, files: files}
	for _, f := range files {
		e.stats = append(e.stats, statKey(f))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]preparedEntry{}
	}
	c.entries[id] = e
}
