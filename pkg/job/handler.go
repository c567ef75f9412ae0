package job

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/version"
)

// Build is a realized version, ready to run.
type Build = version.Build

// Versions finds a version and realizes it if needed (under the realize
// locks, so workers sharing a volume cooperate): *version.Manager.
type Versions interface {
	Prepare(ctx context.Context, versionID string, p progress.Func) (*Build, error)
}

// PrepareFunc is a Versions made of a function (tests, wrappers).
type PrepareFunc func(ctx context.Context, versionID string, p progress.Func) (*Build, error)

// Prepare calls f.
func (f PrepareFunc) Prepare(ctx context.Context, id string, p progress.Func) (*Build, error) {
	return f(ctx, id, p)
}

// Fetcher opens a URL input (https:// or gs://) under the operator's
// limits. Nil refuses URL inputs.
type Fetcher func(ctx context.Context, url string) (io.ReadCloser, error)

// Deliverer stores outputs somewhere other than the result (GCS, S3) and
// returns their entries with URLs.
type Deliverer interface {
	// Check refuses, before the job runs, one this store could not take
	// (no bucket, a bucket name the store would refuse), so no GPU time
	// is spent on outputs that cannot be delivered.
	Check(in *Input) error
	Deliver(ctx context.Context, jobID string, in *Input, files []output.Local) ([]output.File, error)
}

// Config configures a Handler.
type Config struct {
	Versions Versions
	// Scratch is local disk for ComfyUI's input/output/temp/user folders
	// and per-job files; never the shared volume.
	Scratch string
	// Comfy is the template for each ComfyUI process (logger, GPU
	// detection, timeouts, passthrough args); build fields are filled in.
	Comfy comfy.Config
	// ClientTemplate tunes the ComfyUI client; BaseURL and Process are set
	// per process.
	ClientTemplate comfy.ClientConfig
	Defaults       Defaults
	Fetch          Fetcher
	GCS            Deliverer
	S3             Deliverer
	// Base64Limit bounds base64 results; default output.DefaultBase64Limit.
	// In "auto" mode, outputs above AutoThreshold go to a store (GCS when
	// the worker has it, else S3).
	Base64Limit   int64
	AutoThreshold int64
	// ProgressInterval throttles progress updates; default 500 ms (at
	// most 2 per second).
	ProgressInterval time.Duration
	Logger           zerolog.Logger
}

// Handler runs jobs, one at a time, on one warm ComfyUI.
type Handler struct {
	cfg  Config
	mu   sync.Mutex // one job at a time; guards warm
	warm *warm
	// cleaning tracks the previous job's file cleanup, which runs after its
	// result is returned (off the result's path) and before the next job
	// or Close.
	cleaning sync.WaitGroup
	// notices are warnings about the worker itself for the next job's
	// result (see Notify); guarded by mu.
	notices []string
}

// Notify adds a warning about the worker itself (it runs without its
// network volume, say) to the next job's result: the caller sees it once,
// whether the job succeeds or fails. An empty warning is ignored.
func (h *Handler) Notify(warning string) {
	if warning == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notices = append(h.notices, warning)
}

// takeNotices returns the pending notices once; the caller holds h.mu.
func (h *Handler) takeNotices() []string {
	n := h.notices
	h.notices = nil
	return n
}

type warm struct {
	build  *Build
	sup    *comfy.Supervisor
	client *comfy.Client
	// release lets the build's local copy be evicted.
	release func()
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Versions == nil {
		return nil, errors.New("job: Config.Versions is required")
	}
	if cfg.Scratch == "" {
		return nil, errors.New("job: Config.Scratch is required")
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 500 * time.Millisecond
	}
	if cfg.Base64Limit <= 0 {
		cfg.Base64Limit = output.DefaultBase64Limit
	}
	if cfg.AutoThreshold <= 0 {
		cfg.AutoThreshold = 8 << 20
	}
	cfg.Defaults.GCS, cfg.Defaults.S3 = cfg.GCS != nil, cfg.S3 != nil
	return &Handler{cfg: cfg}, nil
}

// Outcome is a finished job: Output on success, Failure otherwise.
type Outcome struct {
	Output  any
	Failure *Failure
}

// Close stops the warm ComfyUI.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleaning.Wait()
	return h.stopWarm(ctx)
}

func (h *Handler) stopWarm(ctx context.Context) error {
	if h.warm == nil {
		return nil
	}
	w := h.warm
	h.warm = nil
	w.client.Close()
	err := w.sup.Stop(ctx)
	w.release()
	return err
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Handle runs one job. report receives progress updates (throttled).
func (h *Handler) Handle(ctx context.Context, jobID string, raw json.RawMessage, report func(any)) Outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleaning.Wait()
	j := h.newRun(jobID, report)
	defer h.cleanAfter(j)
	out, stage, err := j.run(ctx, raw)
	j.timings["total"] = ms(time.Since(j.start))
	if err != nil {
		f := classify(ctx, stage, err)
		f.Details["error_type"] = f.Type
		f.Details["timings_ms"] = j.timings
		if j.versionID != "" {
			f.Details["version_id"] = j.versionID
		}
		if n := h.takeNotices(); len(n) > 0 {
			f.Details["warnings"] = n
		}
		j.log.Error().Str("error_type", f.Type).Str("stage", stage).Msg(f.Message)
		switch j.format {
		case output.FormatWorkerComfyUI:
			shapeWCFailure(f, err)
		case output.FormatOriginal:
			// Its error line, in its words where it had some; the details
			// stay, as its clients read only "error".
			if ie := (*InputError)(nil); errors.As(err, &ie) && ie.Theirs != "" {
				f.Message = ie.Theirs
			}
		}
		return Outcome{Failure: f}
	}
	j.log.Info().Interface("timings_ms", j.timings).Msg("job done")
	return Outcome{Output: out}
}

// newRun starts the bookkeeping of one job; the caller holds h.mu.
func (h *Handler) newRun(jobID string, report func(any)) *jobRun {
	j := &jobRun{h: h, id: jobID, start: time.Now(), timings: map[string]float64{}, report: report,
		log: h.cfg.Logger.With().Str("job_id", jobID).Logger()}
	j.safeID = unsafeID.ReplaceAllString(jobID, "")
	if len(j.safeID) > 12 {
		j.safeID = j.safeID[:12]
	}
	if j.safeID == "" {
		j.safeID = fmt.Sprintf("%x", time.Now().UnixNano())
	}
	j.dir = filepath.Join(h.cfg.Scratch, "jobs", j.safeID)
	j.cleanups = append(j.cleanups, func() { os.RemoveAll(j.dir) })
	return j
}

// cleanAfter removes the job's files in the background once its result is
// on its way; the next job waits for it.
func (h *Handler) cleanAfter(j *jobRun) {
	h.cleaning.Go(func() {
		for _, fn := range j.cleanups {
			fn()
		}
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// jobRun is one job in progress.
type jobRun struct {
	h         *Handler
	id        string
	safeID    string
	dir       string
	versionID string
	start     time.Time
	timings   map[string]float64
	report    func(any)
	lastSent  time.Time
	log       zerolog.Logger
	// format is the job's response format, once known.
	format   string
	cleanups []func() // run after the result is returned
	// warmup runs the workflow only to load what it needs into memory:
	// its outputs are neither delivered nor kept.
	warmup bool
}

// stage times fn under name.
func (j *jobRun) stage(name string, fn func() error) error {
	t := time.Now()
	err := fn()
	j.timings[name] += ms(time.Since(t))
	return err
}

// progress forwards an update, at most one per interval except stage
// changes, which go out at once. Nothing is sent during a job's first
// interval: a job that finishes that fast needs no progress, and each
// update is a request to RunPod competing with the job.
func (j *jobRun) progress(v map[string]any, force bool) {
	if j.report == nil {
		return
	}
	now := time.Now()
	if now.Sub(j.start) < j.h.cfg.ProgressInterval || !force && now.Sub(j.lastSent) < j.h.cfg.ProgressInterval {
		return
	}
	j.lastSent = now
	j.report(v)
}

func (j *jobRun) run(ctx context.Context, raw json.RawMessage) (any, string, error) {
	in, err := ParseInput(raw, j.h.cfg.Defaults)
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			j.format = ie.Format
		}
		return nil, "input", err
	}
	j.format = in.ResponseFormat
	if len(in.Ignored) > 0 {
		j.log.Debug().Strs("keys", in.Ignored).Str("response_format", in.ResponseFormat).Msg("input keys ignored, as this format's clients expect")
	}
	if err := j.h.checkOutput(in); err != nil {
		return nil, "input", err
	}
	build, err := j.prepare(ctx, in.VersionID)
	if err != nil {
		return nil, "realize", err
	}
	// The build's local copy is made, and the models the workflow names
	// are read, while the job's inputs are fetched.
	lc := startLocal(ctx, build)
	defer lc.drop()
	wf, err := j.workflow(ctx, in)
	if err != nil {
		return nil, "input", err
	}
	defer j.readAhead(ctx, build, wf)()
	inputs, err := j.inputs(ctx, in)
	if err != nil {
		return nil, "input", err
	}
	run, release, err := j.takeLocal(lc)
	if err != nil {
		return nil, "realize", err
	}
	w, err := j.startComfy(ctx, run, release)
	if err != nil {
		return nil, "start", err
	}
	j.progress(map[string]any{"stage": "execute"}, true)
	outDir := filepath.Join(j.dir, "out")
	res, err := w.client.Run(ctx, wf, comfy.RunOptions{
		OutputDir: outDir, MemoryBudget: j.h.memoryBudget(in), Inputs: inputs, InputPrefix: j.safeID, Timeout: in.Timeout,
		Progress: j.comfyProgress, ExtraData: extraData(in),
		// worker-comfyui returns what the nodes wrote before one failed.
		PartialOnError: j.format == output.FormatWorkerComfyUI,
	})
	if res != nil {
		j.timings["upload"] += ms(res.Timings.Upload)
		j.timings["queue"] += ms(res.Timings.Queue)
		j.timings["execute"] += ms(res.Timings.Execute)
		j.timings["download"] += ms(res.Timings.Download)
		j.cleanups = append(j.cleanups, func() { j.h.cleanComfyFiles(w, res, j.log) })
	}
	var execWarning string
	if ee := (*comfy.ExecutionError)(nil); err != nil && j.format == output.FormatWorkerComfyUI && errors.As(err, &ee) && res != nil && hasWCFiles(res) {
		execWarning = wcExecutionError(ee)
		j.log.Warn().Str("node", ee.NodeID).Msg("a node failed; returning the files written before it, as worker-comfyui does")
		err = nil
	}
	if err != nil {
		var ve *comfy.ValidationError
		if errors.As(err, &ve) {
			if failed := w.sup.ImportFailures(); len(failed) > 0 {
				// A node type ComfyUI does not know is most often a custom
				// node that failed to import: say which.
				var names []string
				for _, f := range failed {
					names = append(names, f.Name)
				}
				return nil, "execute", &Failure{Type: ErrComfyValidation,
					Message: fmt.Sprintf("%s (custom nodes that failed to import at start-up: %s)", firstLine(err.Error()), strings.Join(names, ", ")),
					Details: map[string]any{"stage": "execute", "validation": ve, "import_failures": failed}}
			}
		}
		var te *comfy.TimeoutError
		if errors.As(err, &te) && !te.Interrupted {
			// ComfyUI may still be busy with the prompt: start clean.
			j.h.stopWarm(context.WithoutCancel(ctx))
		}
		return nil, "execute", err
	}
	if j.warmup {
		return nil, "", nil
	}
	var files []output.Local
	left := 0
	for _, o := range res.Outputs {
		if j.format == output.FormatWorkerComfyUI && output.WCSection(o.Kind, o.Filename, o.Type) == "" {
			left++ // not in its result: neither encoded nor uploaded
			continue
		}
		if o.Path != "" || o.Data != nil {
			files = append(files, output.Local{NodeID: o.NodeID, Kind: o.Kind, Filename: o.Filename, Subfolder: o.Subfolder, Type: o.Type,
				Path: o.Path, Data: o.Data, SHA256: o.SHA256})
		}
	}
	if left > 0 {
		j.log.Info().Int("files", left).Msg("outputs that are not images or videos are left out of a worker-comfyui result, as worker-comfyui does")
	}
	var delivered []output.File
	mode := in.OutputMode
	if err := j.stage("deliver", func() (err error) {
		delivered, mode, err = j.h.deliver(ctx, j.id, in, files)
		return err
	}); err != nil {
		return nil, "deliver", err
	}
	j.timings["total"] = ms(time.Since(j.start))
	result := output.Result{VersionID: in.VersionID, OutputMode: mode, PromptID: res.PromptID, Outputs: delivered, Timings: j.timings,
		NoOutputs: len(res.RawOutputs) == 0}
	result.Texts, result.Warnings = texts(res.Texts)
	if execWarning != "" {
		result.Warnings = append([]string{execWarning}, result.Warnings...)
	}
	result.Warnings = append(j.h.takeNotices(), result.Warnings...)
	if len(res.NodeTimings) > 0 {
		result.NodeTimings = map[string]float64{}
		for id, d := range res.NodeTimings {
			result.NodeTimings[id] = ms(d)
		}
	}
	for _, ne := range res.NodeErrors {
		result.Warnings = append(result.Warnings, fmt.Sprintf("node %s (%s) was skipped: %s", ne.NodeID, ne.ClassType, ne.Message))
	}
	shaped, err := output.Render(in.ResponseFormat, result)
	if err != nil {
		var wf *output.WCFailure
		if errors.As(err, &wf) {
			return nil, "deliver", wf
		}
		return nil, "deliver", &Failure{Type: ErrOutput, Message: err.Error(), Details: map[string]any{}}
	}
	return shaped, "", nil
}

// maxTextBytes bounds the texts in a result: they share RunPod's result
// size limit with the files.
const maxTextBytes = 1 << 20

// texts converts the texts nodes showed, up to maxTextBytes in all.
func texts(in []comfy.TextOutput) ([]output.Text, []string) {
	var out []output.Text
	var warnings []string
	total := 0
	for _, t := range in {
		if total += len(t.Text); total > maxTextBytes {
			warnings = append(warnings, fmt.Sprintf("texts beyond the first %d bytes were left out (node %s and later)", maxTextBytes, t.NodeID))
			break
		}
		out = append(out, output.Text{NodeID: t.NodeID, Kind: t.Kind, Text: t.Text})
	}
	return out, warnings
}

// prepare finds and realizes the job's version (stage "realize").
func (j *jobRun) prepare(ctx context.Context, versionID string) (build *Build, err error) {
	j.versionID = versionID
	j.progress(map[string]any{"stage": "realize", "version_id": versionID}, true)
	err = j.stage("realize", func() (err error) {
		build, err = j.h.cfg.Versions.Prepare(ctx, versionID, j.realizeProgress)
		return err
	})
	return build, err
}

// startComfy makes build's ComfyUI the warm one (stage "start"). release
// lets build's local copy go: the warm ComfyUI keeps it until it stops.
func (j *jobRun) startComfy(ctx context.Context, build *Build, release func()) (w *warm, err error) {
	err = j.stage("start", func() (err error) {
		w, err = j.h.ensure(ctx, build, j, release)
		return err
	})
	return w, err
}

func extraData(in *Input) map[string]any {
	if in.ComfyOrgAPIKey == "" {
		return nil
	}
	return map[string]any{"api_key_comfy_org": in.ComfyOrgAPIKey}
}

// realizeProgress forwards download progress while a version is realized.
func (j *jobRun) realizeProgress(e progress.Event) {
	v := map[string]any{"stage": "realize", "task": e.Task, "item": e.Item, "done": e.Done, "total": e.Total, "unit": e.Unit}
	j.progress(v, false)
}

// comfyProgress forwards ComfyUI's node and step progress.
func (j *jobRun) comfyProgress(e progress.Event) {
	v := map[string]any{"stage": "execute", "node": e.Item, "value": e.Done, "max": e.Total, "unit": e.Unit}
	if e.Total > 0 {
		v["percent"] = 100 * e.Done / e.Total
	}
	j.progress(v, false)
}

// workflow returns the job's workflow, fetching workflow_url if given.
// maxWorkflowBytes bounds a workflow fetched from workflow_url.
const maxWorkflowBytes = 32 << 20

func (j *jobRun) workflow(ctx context.Context, in *Input) (comfy.Workflow, error) {
	if in.WorkflowURL == "" {
		return in.Workflow, nil
	}
	if j.h.cfg.Fetch == nil {
		return nil, inputErr("workflow_url", "URL inputs are disabled on this worker: send the workflow inline")
	}
	var wf comfy.Workflow
	err := j.stage("inputs", func() error {
		rc, err := j.h.cfg.Fetch(ctx, in.WorkflowURL)
		if err != nil {
			return inputErr("workflow_url", "%v", err)
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, maxWorkflowBytes+1))
		if err != nil {
			return inputErr("workflow_url", "%v", err)
		}
		if len(data) > maxWorkflowBytes {
			return inputErr("workflow_url", "the workflow is over %d MB; a workflow in ComfyUI's API format is far smaller: check the URL", maxWorkflowBytes>>20)
		}
		if wf, err = parseWorkflowJSON(data); err != nil {
			return inputErr("workflow_url", "the fetched workflow: %v", err)
		}
		return nil
	})
	return wf, err
}

// inputs opens every input file: decoded bytes, or a fetched URL.
func (j *jobRun) inputs(ctx context.Context, in *Input) ([]comfy.Input, error) {
	var out []comfy.Input
	err := j.stage("inputs", func() error {
		for i, img := range in.Images {
			if img.URL == "" {
				out = append(out, comfy.Input{Name: img.Name, Reader: bytes.NewReader(img.Data)})
				continue
			}
			if j.h.cfg.Fetch == nil {
				return inputErr(fmt.Sprintf("images[%d]", i), "URL inputs are disabled on this worker: send the image as base64")
			}
			rc, err := j.h.cfg.Fetch(ctx, img.URL)
			if err != nil {
				return inputErr(img.Name, "%v", err)
			}
			// Spool to disk: the upload may be retried, and images can be big.
			p := filepath.Join(j.dir, "in", fmt.Sprintf("%d", i))
			if err := spool(rc, p); err != nil {
				return inputErr(img.Name, "download: %v", err)
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			out = append(out, comfy.Input{Name: img.Name, Reader: f})
		}
		return nil
	})
	return out, err
}

func spool(rc io.ReadCloser, path string) error {
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
