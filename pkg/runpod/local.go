package runpod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Exit codes of the local one-shot mode, as the SDK's.
const (
	ExitOK      = 0
	ExitFailure = 1
)

// DefaultTestInputFile is read when no --test_input is given; like the SDK
// it is relative to the working directory.
const DefaultTestInputFile = "test_input.json"

// LocalJobID is the id of a local job whose input has none, as in the SDK.
const LocalJobID = "local_test"

// LocalOptions configure RunLocal.
type LocalOptions struct {
	// TestInput is the --test_input value; it wins over the file.
	TestInput string
	// TestInputFile is read when TestInput is empty; default
	// DefaultTestInputFile.
	TestInputFile string
	// Out receives the result as JSON, in the shape the worker would post
	// ({"output": ...} or {"error": ..., "output": details}); nil discards.
	Out io.Writer
	// Config supplies the hostname and worker id for internal-error details.
	Config Config
}

// RunLocal runs one job from a test input, the SDK's local mode when
// RUNPOD_WEBHOOK_GET_JOB is unset. It prints the result and returns
// ExitOK on success and ExitFailure otherwise; a test input that is missing
// or not a job also fails, with a {"error": ...} printed saying what to fix.
// No heartbeat, job-take or stop channel is involved.
func RunLocal(ctx context.Context, h Handler, lo LocalOptions, opts ...Option) int {
	o := buildOptions(opts)
	log := o.log
	out := lo.Out
	if out == nil {
		out = io.Discard
	}
	job, err := loadTestInput(lo)
	if err != nil {
		log.Error().Err(err).Msg("local test input")
		printJSON(out, encodeResult(Result{Error: err.Error(), Output: map[string]any{"error_type": "input"}}).bytes())
		return ExitFailure
	}
	if h == nil {
		log.Error().Msg("no handler")
		return ExitFailure
	}
	log = log.With().Str("job_id", job.ID).Logger()
	log.Info().Msg("local job started")
	progress := ProgressFunc(func(v any) {
		b, err := marshal(v)
		if err != nil {
			return
		}
		log.Info().RawJSON("progress", b).Msg("job progress")
	})
	info := workerInfo{hostname: lo.Config.Hostname, workerID: lo.Config.PodID, runpodVersion: lo.Config.withDefaults().RunpodVersion}
	if info.workerID == "" {
		info.workerID = "local"
	}
	res := callHandler(ctx, h, job, progress, info)
	printJSON(out, encodeResult(res).bytes())
	if res.Failed() {
		log.Error().Str("error", res.Error).Msg("local job failed")
		return ExitFailure
	}
	log.Info().Msg("local job completed successfully")
	return ExitOK
}

// loadTestInput reads the job the way the SDK does: --test_input first, else
// the file; it must be an object with a non-null "input"; "id" is optional.
func loadTestInput(lo LocalOptions) (Job, error) {
	raw := []byte(lo.TestInput)
	src := "--test_input"
	if lo.TestInput == "" {
		path := lo.TestInputFile
		if path == "" {
			path = DefaultTestInputFile
		}
		src = path
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return Job{}, fmt.Errorf("%s not found: pass --test_input '{\"input\": {...}}' or create the file", path)
		}
		if err != nil {
			return Job{}, fmt.Errorf("read %s: %w", path, err)
		}
		raw = b
	}
	var in struct {
		ID    *string         `json:"id"`
		Input json.RawMessage `json:"input"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&in); err != nil {
		return Job{}, fmt.Errorf("%s is not a JSON job object like {\"input\": {...}}: %w", src, err)
	}
	if dec.More() {
		return Job{}, fmt.Errorf("%s has trailing data after the JSON job object", src)
	}
	if len(in.Input) == 0 || string(in.Input) == "null" {
		return Job{}, fmt.Errorf("%s has no \"input\": the job has no input parameter, unable to run", src)
	}
	job := Job{ID: LocalJobID, Input: in.Input}
	if in.ID != nil && *in.ID != "" {
		job.ID = *in.ID
	}
	return job, nil
}

// printJSON writes body indented, ending with a newline.
func printJSON(w io.Writer, body []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, body, "", "  ") != nil {
		buf.Reset()
		buf.Write(body)
	}
	buf.WriteByte('\n')
	_, _ = w.Write(buf.Bytes())
}
