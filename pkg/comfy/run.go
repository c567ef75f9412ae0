package comfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// Input is a file to upload to ComfyUI's input folder before the prompt.
type Input struct {
	// Name is the file name the workflow refers to (e.g. LoadImage's image).
	Name   string
	Reader io.Reader
}

// RunOptions tune one Run.
type RunOptions struct {
	// OutputDir receives every output file; empty lists outputs without
	// downloading them.
	OutputDir string
	// MemoryBudget keeps outputs in memory (Output.Data) instead of under
	// OutputDir while their total size stays within this many bytes; 0
	// writes every output to disk. Only outputs whose size ComfyUI states
	// up front qualify.
	MemoryBudget int64
	// Inputs are uploaded under job-unique names (see UniqueInputName) and
	// the workflow's references to them rewritten.
	Inputs []Input
	// InputPrefix makes input names unique; default: the prompt id's first
	// 8 characters.
	InputPrefix string
	// Timeout bounds the whole run (a deadline on ctx does too); when it
	// passes the prompt is interrupted and Run returns a *TimeoutError.
	Timeout time.Duration
	// Progress receives Task "comfy" events: Item "" for the prompt as a
	// whole (Unit "nodes"), a node id for a node (Unit "steps").
	Progress progress.Func
	// ExtraData is sent as extra_data (e.g. api_key_comfy_org). Never logged.
	ExtraData map[string]any
	// SkipTemp leaves out type "temp" outputs (PreviewImage).
	SkipTemp bool
	// PromptID to use; default a fresh lowercase UUID4. It must be new:
	// ComfyUI queues a reused id again, and while the socket is silent the
	// history of the earlier run with that id would be taken for this one.
	PromptID string
	// PartialOnError makes Run, when a node raises, also return (with the
	// *ExecutionError) a Result holding the files the nodes that finished
	// had written, downloaded as usual (see partial.go).
	PartialOnError bool
}

// Output is one file a node produced.
type Output struct {
	NodeID string
	// Kind is the key it was listed under: images, gifs, videos, audio, ...
	Kind      string
	Filename  string
	Subfolder string
	// Type is ComfyUI's folder type: output, temp or input.
	Type string
	// Cached is set when the node was served from ComfyUI's cache.
	Cached bool
	// Path is the downloaded file ("" when not downloaded or kept in
	// memory); Size its bytes.
	Path string
	Size int64
	// Data is the content when it was kept in memory (see
	// RunOptions.MemoryBudget); nil otherwise.
	Data []byte
	// SHA256 is the hex digest of the downloaded content.
	SHA256 string
}

// Timings are the stages of one Run.
type Timings struct {
	Upload, Queue, Execute, Download, Total time.Duration
}

// Result is a finished prompt.
type Result struct {
	PromptID string
	Outputs  []Output
	// Texts are the strings nodes showed instead of writing files.
	Texts []TextOutput
	// CachedNodes are the nodes ComfyUI served from its cache.
	CachedNodes []string
	// NodeErrors are outputs ComfyUI dropped at validation while running
	// the rest (a 200 answer can carry them).
	NodeErrors []NodeError
	// Inputs maps each input's original name to the name it was uploaded as.
	Inputs map[string]string
	// Resubmitted is set when the outputs of a cached re-run had been
	// deleted and the output nodes were run again to write them anew.
	Resubmitted bool
	// RawOutputs is the history's outputs object, node id → UI dict.
	RawOutputs map[string]json.RawMessage
	Timings    Timings
	// NodeTimings is the execution time of each node that ran, as the
	// socket reported it (empty when it dropped before the end).
	NodeTimings map[string]time.Duration
}

// rerunInput is the input added to output nodes to make ComfyUI run them
// again. ComfyUI's cache key covers every input key of a node, declared or
// not, while nodes only receive the inputs they declare.
const rerunInput = "_worker_rerun"

// Run uploads opts.Inputs, submits wf, follows it to the end and downloads
// every output to opts.OutputDir. Failures are typed: *ValidationError,
// *ExecutionError, *TimeoutError, *InterruptedError, *CrashError (wrapped),
// *HTTPError.
func (c *Client) Run(ctx context.Context, wf Workflow, opts RunOptions) (*Result, error) {
	start := time.Now()
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	promptID := opts.PromptID
	if promptID == "" {
		promptID = uuid.NewString()
	}
	res := &Result{PromptID: promptID}

	if len(opts.Inputs) > 0 {
		prefix := opts.InputPrefix
		if prefix == "" {
			prefix = promptID[:min(8, len(promptID))]
		}
		names, err := c.uploadInputs(ctx, prefix, opts.Inputs)
		if err != nil {
			return nil, c.timeoutOr(ctx, promptID, start, "upload", err)
		}
		res.Inputs = names
		var rewrites []Rewrite
		wf, rewrites = RewriteInputs(wf, names)
		for _, r := range rewrites {
			c.log.Debug().Str("node", r.NodeID).Str("input", r.Input).Str("from", r.From).Str("to", r.To).Msg("input reference rewritten")
		}
		res.Timings.Upload = time.Since(start)
	}

	run, err := c.execute(ctx, wf, promptID, opts, start)
	if err != nil {
		if ee := (*ExecutionError)(nil); opts.PartialOnError && errors.As(err, &ee) {
			return c.partial(ctx, ee, promptID, opts, start, res), err
		}
		return nil, err
	}
	err = c.finishResult(ctx, res, run, opts, start)
	var missing *missingOutputError
	if errors.As(err, &missing) && missing.allCached() {
		// A cached re-run lists the files of the earlier run, and some are
		// gone: run those output nodes again so they write new files.
		nodes := missing.nodes()
		c.log.Info().Str("prompt_id", res.PromptID).Strs("nodes", nodes).Msg("cached outputs were deleted; running their nodes again")
		rerun := wf.Clone()
		nonce := uuid.NewString()
		for _, id := range nodes {
			if n := rerun[id]; n != nil {
				n.Inputs[rerunInput] = nonce
			}
		}
		res.PromptID = uuid.NewString()
		res.Resubmitted = true
		if run, err = c.execute(ctx, rerun, res.PromptID, opts, start); err != nil {
			return nil, err
		}
		err = c.finishResult(ctx, res, run, opts, start)
	}
	if err != nil {
		return nil, err
	}
	res.Timings.Total = time.Since(start)
	return res, nil
}

// finishResult fills res from a finished run and downloads the outputs.
func (c *Client) finishResult(ctx context.Context, res *Result, run *runState, opts RunOptions, start time.Time) error {
	res.PromptID = run.promptID
	res.CachedNodes = run.cachedNodes()
	res.NodeErrors = run.nodeErrors
	res.RawOutputs = run.entry.Outputs
	var stale []Output
	res.Outputs, stale, res.Texts = collectOutputs(run.entry.Outputs, run.cachedSet(), opts.SkipTemp)
	if run.sawEnd {
		res.NodeTimings = run.nodeTimes
	}
	res.Timings.Queue += run.queued
	res.Timings.Execute += run.executed
	if len(stale) > 0 {
		// Like a deleted file: the cached nodes must write theirs again.
		return &missingOutputError{Outputs: stale}
	}
	if opts.OutputDir == "" {
		return nil
	}
	t := time.Now()
	err := c.downloadAll(ctx, res.Outputs, opts.OutputDir, opts.MemoryBudget)
	res.Timings.Download += time.Since(t)
	if err != nil {
		var missing *missingOutputError
		if errors.As(err, &missing) {
			return err
		}
		return c.timeoutOr(ctx, res.PromptID, start, "download", c.explain(ctx, res.PromptID, err))
	}
	return nil
}

// execute submits wf and follows it until ComfyUI has finished it.
func (c *Client) execute(ctx context.Context, wf Workflow, promptID string, opts RunOptions, start time.Time) (*runState, error) {
	st := newRunState(promptID, wf, opts.Progress, start)
	sub, err := c.subscribe(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.timeoutOr(ctx, promptID, start, "submit", err)
		}
		if err := c.explain(ctx, promptID, err); err != nil && c.procExited() {
			return nil, err
		}
		c.log.Warn().Err(err).Msg("no ComfyUI WebSocket; following the prompt by polling its history")
		sub = nil
	}
	if sub != nil {
		defer sub.cancel()
	}
	submitted := time.Now()
	id, nodeErrs, err := c.submit(ctx, wf, c.clientID, promptID, opts.ExtraData)
	if err != nil {
		return nil, c.timeoutOr(ctx, promptID, start, "submit", c.explain(ctx, promptID, err))
	}
	if id != promptID {
		// v0.3.12 ignores a client-chosen prompt_id.
		c.log.Debug().Str("asked", promptID).Str("got", id).Msg("ComfyUI chose its own prompt id")
	}
	st.promptID = id
	st.submitted = submitted
	st.nodeErrors = nodeErrs
	c.log.Debug().Str("prompt_id", id).Msg("prompt queued")
	if err := c.wait(ctx, sub, st); err != nil {
		return nil, err
	}
	return st, nil
}

func (c *Client) procExited() bool {
	select {
	case <-c.procDone():
		return c.cfg.Process != nil
	default:
		return false
	}
}

type promptRequest struct {
	Prompt    Workflow       `json:"prompt"`
	ClientID  string         `json:"client_id"`
	PromptID  string         `json:"prompt_id"`
	ExtraData map[string]any `json:"extra_data,omitempty"`
}

// submit posts the prompt. A 400 becomes a *ValidationError.
func (c *Client) submit(ctx context.Context, wf Workflow, clientID, promptID string, extra map[string]any) (string, []NodeError, error) {
	body, status, err := c.do(ctx, http.MethodPost, "/prompt", promptRequest{Prompt: wf, ClientID: clientID, PromptID: promptID, ExtraData: extra})
	if status == http.StatusBadRequest {
		ve, derr := decodeValidationError(body)
		if derr != nil {
			return "", nil, err
		}
		return "", nil, ve
	}
	if err != nil {
		return "", nil, err
	}
	var ok struct {
		PromptID   string          `json:"prompt_id"`
		NodeErrors json.RawMessage `json:"node_errors"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.PromptID == "" {
		return "", nil, fmt.Errorf("ComfyUI POST /prompt: unexpected answer %q", truncate(string(body), maxErrorBody))
	}
	nodeErrs, _ := decodeNodeErrors(ok.NodeErrors)
	return ok.PromptID, nodeErrs, nil
}

// timeoutOr reports a passed deadline as a *TimeoutError and a cancelled
// context as such; other errors pass through.
func (c *Client) timeoutOr(ctx context.Context, promptID string, start time.Time, stage string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &TimeoutError{PromptID: promptID, After: time.Since(start), Stage: stage}
	case ctx.Err() != nil:
		return fmt.Errorf("prompt %s cancelled: %w", promptID, ctx.Err())
	}
	return err
}
