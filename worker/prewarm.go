package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/runpod-comfy/worker/pkg/job"
)

// prewarmConfig reads COMFY_PREWARM (a version id, or 1/true for
// COMFY_VERSION_NAME) and COMFY_WARMUP_WORKFLOW (an API-format workflow
// file run once on it; setting it alone warms COMFY_VERSION_NAME). Both
// are checked here, before the worker takes jobs: a misspelt version or a
// broken file is a deployment error, not a log line found hours later.
func (a *app) prewarmConfig() (string, json.RawMessage, error) {
	v := strings.TrimSpace(a.getenv("COMFY_PREWARM"))
	wfPath := a.getenv("COMFY_WARMUP_WORKFLOW")
	id := v
	switch strings.ToLower(v) {
	case "0", "false", "no", "off":
		return "", nil, nil
	case "":
		if wfPath == "" {
			return "", nil, nil
		}
	case "1", "true", "yes", "on":
		id = ""
	}
	if id == "" {
		id = a.getenv("COMFY_VERSION_NAME")
	}
	if id == "" {
		return "", nil, usageErr(fmt.Errorf("COMFY_PREWARM=%q: name the version to warm up, or set COMFY_VERSION_NAME", v))
	}
	if _, err := a.manager(nil).Load(id); err != nil {
		return "", nil, usageErr(fmt.Errorf("warm-up version: %w", err))
	}
	if wfPath == "" {
		return id, nil, nil
	}
	wf, err := os.ReadFile(wfPath)
	if err != nil {
		return "", nil, usageErr(fmt.Errorf("COMFY_WARMUP_WORKFLOW: %w", err))
	}
	input, err := job.WarmupInput(id, wf)
	if err == nil {
		_, err = job.ParseInput(input, job.Defaults{})
	}
	if err != nil {
		return "", nil, usageErr(fmt.Errorf("COMFY_WARMUP_WORKFLOW=%s: %w", wfPath, err))
	}
	return id, wf, nil
}
