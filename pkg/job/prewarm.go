package job

import (
	"context"
	"encoding/json"
	"fmt"
)

// WarmupInput is the job input of a warm-up: the version and, optionally,
// a workflow in API format. Validating it with ParseInput before a worker
// starts turns a bad warm-up file into a start-up error instead of a log
// line nobody reads.
func WarmupInput(versionID string, workflow json.RawMessage) (json.RawMessage, error) {
	in := map[string]any{"version_id": versionID}
	if len(workflow) > 0 {
		if !json.Valid(workflow) {
			return nil, inputErr("workflow", "not valid JSON")
		}
		in["workflow"] = workflow
	}
	return json.Marshal(in)
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
	var stage string
	var err error
	if len(workflow) > 0 {
		var input json.RawMessage
		if input, err = WarmupInput(versionID, workflow); err == nil {
			_, stage, err = j.run(ctx, input)
		} else {
			stage = "input"
		}
	} else {
		stage, err = j.startVersion(ctx, versionID)
	}
	if err != nil {
		f := classify(ctx, stage, err)
		return fmt.Errorf("warm-up of %s: %s", versionID, f.Message)
	}
	j.log.Info().Str("version_id", versionID).Bool("workflow", len(workflow) > 0).
		Interface("timings_ms", j.timings).Msg("worker warmed up")
	return nil
}

// startVersion realizes versionID and makes its ComfyUI the warm one.
func (j *jobRun) startVersion(ctx context.Context, versionID string) (string, error) {
	j.versionID = versionID
	var build *Build
	if err := j.stage("realize", func() (err error) {
		build, err = j.h.cfg.Prepare(ctx, versionID, j.realizeProgress)
		return err
	}); err != nil {
		return "realize", err
	}
	if err := j.stage("start", func() (err error) {
		_, err = j.h.ensure(ctx, build, j)
		return err
	}); err != nil {
		return "start", err
	}
	return "", nil
}
