package endpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/runpod-comfy/worker/internal/ctxwait"
)

// CallOptions tune one Call.
type CallOptions struct {
	// Sync submits with /runsync (falling back to polling /status when the
	// job outlives the wait window) instead of /run.
	Sync bool
	// Timeout bounds the whole call; when it passes the job is cancelled
	// and the error wraps ErrTimeout. 0: wait as long as ctx allows.
	Timeout time.Duration
	// SyncWait is the /runsync wait window, 1 s to 300 s; default 90 s, and
	// within Timeout so a slow job's id is known before the deadline.
	SyncWait time.Duration
	// Progress receives every status change and progress update, on the
	// calling goroutine: it should return quickly.
	Progress func(Update)
	// Stream, when set, receives the partial outputs of a streaming
	// (generator) handler read from /stream/{id}, in order.
	Stream func(chunk json.RawMessage)
}

// Call runs one job with the given input object and waits for it. A job
// that ends FAILED, CANCELLED or TIMED_OUT returns its Result together with
// a *JobError carrying the endpoint's error text. When ctx ends (or
// opts.Timeout passes) after the job was submitted, /cancel is sent for it
// before Call returns.
func (c *Client) Call(ctx context.Context, input json.RawMessage, opts CallOptions) (*Result, error) {
	return c.CallRequest(ctx, &Request{Input: input}, opts)
}

// CallRequest is Call for a full Request (webhook, policy).
func (c *Client) CallRequest(ctx context.Context, req *Request, opts CallOptions) (*Result, error) {
	if err := req.check(opts.Sync); err != nil {
		return nil, err
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, opts.Timeout, ErrTimeout)
		defer cancel()
	}
	w := &waiter{c: c, opts: opts}
	var res *Result
	if opts.Sync {
		wait := opts.SyncWait
		if wait <= 0 {
			wait = DefaultSyncWait
		}
		if opts.Timeout > 0 {
			wait = min(wait, opts.Timeout*4/5)
		}
		r, err := c.runSync(ctx, req, wait)
		if err != nil {
			return nil, c.callErr(ctx, "", err, opts, false)
		}
		res = r
	} else {
		id, err := c.run(ctx, req)
		if err != nil {
			return nil, c.callErr(ctx, "", err, opts, false)
		}
		res = &Result{ID: id, Status: StatusInQueue}
	}
	c.log.Debug().Str("job_id", res.ID).Str("status", res.Status).Msg("job submitted")
	w.seen(res)
	if !Terminal(res.Status) {
		r, err := w.wait(ctx, res.ID)
		if err != nil {
			if ctx.Err() != nil {
				c.cancelDetached(res.ID)
				return w.last, c.callErr(ctx, res.ID, err, opts, true)
			}
			return w.last, fmt.Errorf("job %s: lost track of it (%w); it may still be running: check it in the RunPod console", res.ID, err)
		}
		res = r
	}
	return res, res.jobErr()
}

// callErr explains why a call stopped early.
func (c *Client) callErr(ctx context.Context, id string, err error, opts CallOptions, cancelled bool) error {
	if ctx.Err() == nil {
		if id == "" {
			return fmt.Errorf("submit the job: %w", err)
		}
		return err
	}
	note := ""
	switch {
	case cancelled:
		note = " (cancel sent)"
	case opts.Sync:
		note = " (the /runsync request was abandoned before it returned a job id, so the job could not be cancelled; it may still run)"
	}
	what := "job " + id
	if id == "" {
		what = "submitting the job"
	}
	if errors.Is(context.Cause(ctx), ErrTimeout) {
		return fmt.Errorf("%s did not finish within %s%s: %w", what, opts.Timeout, note, ErrTimeout)
	}
	return fmt.Errorf("%s stopped%s: %w", what, note, ctx.Err())
}

// jobErr is the *JobError of a terminal result other than COMPLETED.
func (r *Result) jobErr() error {
	if r.Status == StatusCompleted {
		return nil
	}
	je := &JobError{JobID: r.ID, Status: r.Status, Message: r.Error, Details: r.Output}
	// A handler exception reaches RunPod as a string holding JSON
	// ({"error_type", "error_message", ...}); show its message.
	var inner struct {
		Type    string `json:"error_type"`
		Message string `json:"error_message"`
	}
	if json.Unmarshal([]byte(r.Error), &inner) == nil && inner.Message != "" {
		je.Message, je.Type = inner.Message, inner.Type
	}
	var details struct {
		Type string `json:"error_type"`
	}
	if json.Unmarshal(r.Output, &details) == nil && details.Type != "" {
		je.Type = details.Type
	}
	return je
}

// waiter follows one job and reports what changes.
type waiter struct {
	c            *Client
	opts         CallOptions
	last         *Result
	lastStatus   string
	lastProgress []byte
	noStream     bool
}

func (w *waiter) seen(r *Result) {
	w.last = r
	var prog json.RawMessage
	if r.Status == StatusInProgress && len(r.Output) > 0 {
		prog = r.Output
	}
	if r.Status == w.lastStatus && bytes.Equal(prog, w.lastProgress) {
		return
	}
	w.lastStatus, w.lastProgress = r.Status, prog
	w.c.log.Debug().Str("job_id", r.ID).Str("status", r.Status).RawJSON("progress", nonEmpty(prog)).Msg("job update")
	if w.opts.Progress != nil {
		w.opts.Progress(Update{JobID: r.ID, Status: r.Status, Progress: prog})
	}
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

// wait polls until the job is terminal. Transient failures (network, 429,
// 5xx) are retried with backoff up to MaxPollFailures in a row.
func (w *waiter) wait(ctx context.Context, id string) (*Result, error) {
	failures := 0
	delay := w.c.cfg.PollInterval
	for {
		if err := ctxwait.Sleep(ctx, delay); err != nil {
			return nil, err
		}
		res, err := w.poll(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			failures++
			if !transient(err) || failures >= w.c.cfg.MaxPollFailures {
				return nil, err
			}
			delay = min(w.c.cfg.PollInterval<<failures, 10*time.Second)
			w.c.log.Warn().Str("job_id", id).Int("failures", failures).Str("error", err.Error()).Msg("status poll failed, retrying")
			continue
		}
		failures, delay = 0, w.c.cfg.PollInterval
		w.seen(res)
		if Terminal(res.Status) {
			w.drain(ctx, id)
			return res, nil
		}
	}
}

// poll reads new stream chunks (when asked for) and then the status.
func (w *waiter) poll(ctx context.Context, id string) (*Result, error) {
	if w.opts.Stream != nil && !w.noStream {
		if _, err := w.readStream(ctx, id); err != nil {
			return nil, err
		}
	}
	return w.c.status(ctx, id)
}

// readStream delivers the chunks of one /stream read. An endpoint that
// refuses /stream (4xx other than 429) is not asked again.
func (w *waiter) readStream(ctx context.Context, id string) (int, error) {
	_, chunks, err := w.c.stream(ctx, id)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && !ae.transient() && ae.StatusCode != http.StatusUnauthorized {
			w.c.log.Warn().Str("job_id", id).Str("error", err.Error()).Msg("the endpoint does not stream; following /status only")
			w.noStream = true
			return 0, nil
		}
		return 0, err
	}
	for _, ch := range chunks {
		w.opts.Stream(ch)
	}
	return len(chunks), nil
}

// drain reads what a streaming job produced after the last read, until a
// read returns nothing.
func (w *waiter) drain(ctx context.Context, id string) {
	for range 20 {
		if w.opts.Stream == nil || w.noStream {
			return
		}
		n, err := w.readStream(ctx, id)
		if err != nil || n == 0 {
			return
		}
	}
}

func transient(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.transient()
	}
	var ie *InputError
	return !errors.As(err, &ie)
}
