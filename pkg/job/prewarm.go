package job

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
)

// WarmupInput is the job input of a warm-up: the version and, optionally,
// a workflow in API format. Validating it with ParseInput before a worker
// starts turns a bad warm-up file into a start-up error instead of a log
// line nobody reads.
func WarmupInput(versionID string, workflow json.RawMessage) (json.RawMessage, error) {
	return Request{VersionID: versionID, Workflow: workflow}.JSON()
}

// Prewarm readies the worker before its first job: it realizes versionID,
// starts its ComfyUI and, with a workflow, runs that once so the models it
// loads are in memory when the first job comes. Its outputs are discarded.
// Jobs that arrive meanwhile wait for it (jobs run one at a time) and then
// find ComfyUI warm; a job for another version switches as usual.
func (h *Handler) Prewarm(ctx context.Context, versionID string, workflow json.RawMessage) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleaning.Wait()
	j := h.newRun("warm-up", nil)
	j.warmup = true
	defer h.cleanAfter(j)
	stage, err := j.warmUp(ctx, versionID, workflow)
	if err != nil {
		f := classify(ctx, stage, err)
		return fmt.Errorf("warm-up of %s: %s", versionID, f.Message)
	}
	j.log.Info().Str("version_id", versionID).Bool("workflow", len(workflow) > 0).
		Interface("timings_ms", j.timings).Msg("worker warmed up")
	return nil
}

// warmUp runs the workflow, or without one realizes the version and
// starts its ComfyUI; it returns the stage that failed.
func (j *jobRun) warmUp(ctx context.Context, versionID string, workflow json.RawMessage) (string, error) {
	if len(workflow) > 0 {
		input, err := WarmupInput(versionID, workflow)
		if err != nil {
			return "input", err
		}
		_, stage, err := j.run(ctx, input)
		return stage, err
	}
	build, err := j.prepare(ctx, versionID)
	if err != nil {
		return "realize", err
	}
	run, release, err := j.takeLocal(startLocal(ctx, build))
	if err != nil {
		return "realize", err
	}
	if _, err := j.startComfy(ctx, run, release); err != nil {
		return "start", err
	}
	return "", nil
}

// StartPrewarm runs Prewarm in the background while the worker already
// takes jobs (and sends heartbeats); the first job waits for it. A failure
// is logged: jobs then realize and start their version themselves. stop
// cancels the warm-up and waits for it.
func (h *Handler) StartPrewarm(ctx context.Context, versionID string, workflow json.RawMessage) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		h.cfg.Logger.Info().Str("version_id", versionID).Bool("workflow", workflow != nil).Msg("warming up")
		if err := h.Prewarm(ctx, versionID, workflow); err != nil && ctx.Err() == nil {
			h.cfg.Logger.Error().Err(err).Msg("warm-up failed; jobs will realize and start their version themselves")
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// StartCopy readies versionID's build on local disk in the background,
// without starting ComfyUI: a worker with a default version but no warm-up
// has its local copy before its first job. Jobs do not wait for it; one
// for that version shares its work (the copy is made once). stop cancels
// it and waits.
func (h *Handler) StartCopy(ctx context.Context, versionID string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		log := h.cfg.Logger.With().Str("version_id", versionID).Logger()
		b, err := h.cfg.Versions.Prepare(ctx, versionID, nil)
		if err == nil {
			var release func()
			if _, release, err = b.Local(ctx); err == nil {
				release()
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("could not ready the default version before the first job; its first job does it")
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// Warmup is what a worker warms up before its first job.
type Warmup struct {
	VersionID string
	Workflow  json.RawMessage // nil: realize and start only
}

// ParseWarmup reads the warm-up settings: prewarm is COMFY_PREWARM (a
// version id, 1/true for versionName, 0/false or empty for none) and
// workflowPath COMFY_WARMUP_WORKFLOW (an API-format workflow file run once;
// set alone it warms versionName). The file is read and checked as a job
// input here, so that a broken one stops the worker at start instead of
// becoming a log line found hours later. nil means no warm-up.
func ParseWarmup(prewarm, versionName, workflowPath string) (*Warmup, error) {
	v := strings.TrimSpace(prewarm)
	id := v
	switch strings.ToLower(v) {
	case "0", "false", "no", "off":
		return nil, nil
	case "":
		if workflowPath == "" {
			return nil, nil
		}
	case "1", "true", "yes", "on":
		id = ""
	}
	if id == "" {
		id = versionName
	}
	if id == "" {
		return nil, fmt.Errorf("COMFY_PREWARM=%q: name the version to warm up, or set COMFY_VERSION_NAME", v)
	}
	w := &Warmup{VersionID: id}
	if workflowPath == "" {
		return w, nil
	}
	wf, err := os.ReadFile(workflowPath)
	if err != nil {
		return nil, fmt.Errorf("COMFY_WARMUP_WORKFLOW: %w", err)
	}
	input, err := WarmupInput(id, wf)
	if err == nil {
		_, err = ParseInput(input, Defaults{})
	}
	if err != nil {
		return nil, fmt.Errorf("COMFY_WARMUP_WORKFLOW=%s: %w", workflowPath, err)
	}
	w.Workflow = wf
	return w, nil
}
