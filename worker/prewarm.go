package main

import (
	"fmt"

	"github.com/runpod-comfy/worker/pkg/job"
)

// prewarmConfig reads COMFY_PREWARM and COMFY_WARMUP_WORKFLOW and checks
// them before the worker takes jobs: a misspelt version or a broken file is
// a deployment error, not a log line found hours later. nil: no warm-up.
func (a *app) prewarmConfig() (*job.Warmup, error) {
	w, err := job.ParseWarmup(a.getenv("COMFY_PREWARM"), a.getenv("COMFY_VERSION_NAME"), a.getenv("COMFY_WARMUP_WORKFLOW"))
	if err != nil || w == nil {
		return nil, usageErrOrNil(err)
	}
	if _, err := a.manager(nil).Load(w.VersionID); err != nil {
		return nil, usageErr(fmt.Errorf("warm-up version: %w", err))
	}
	return w, nil
}
