package endpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	sdkendpoint "github.com/runpod/go-sdk/pkg/sdk/endpoint"
)

// Result is a job's status as the endpoint API reports it.
type Result struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Output is the job's output: the result when COMPLETED, the last
	// progress update while IN_PROGRESS, error details next to Error.
	Output json.RawMessage `json:"output,omitempty"`
	// Error is the endpoint's error text; a non-string error is kept as
	// its JSON text.
	Error         string `json:"error,omitempty"`
	DelayTime     int64  `json:"delayTime,omitempty"`
	ExecutionTime int64  `json:"executionTime,omitempty"`
	WorkerID      string `json:"workerId,omitempty"`
}

// sdkCall runs fn, an SDK call that takes no context, on a goroutine the
// Client owns, and stops waiting when ctx ends. The SDK's own request
// timeout ends fn; Close waits for it.
func sdkCall[T any](ctx context.Context, c *Client, fn func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	type answer struct {
		v   T
		err error
	}
	ch := make(chan answer, 1)
	c.inflight.Add(1)
	go func() {
		defer c.inflight.Done()
		v, err := fn()
		ch <- answer{v, err}
	}()
	select {
	case a := <-ch:
		return a.v, a.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// sdkErr turns an SDK error into an *APIError when it carries an HTTP
// status, else wraps it (network failures, undecodable answers).
func (c *Client) sdkErr(op string, err error) error {
	if code := sdkStatus(err); code != 0 {
		return &APIError{Op: op, EndpointID: c.cfg.EndpointID, StatusCode: code}
	}
	return fmt.Errorf("RunPod endpoint API /%s: %w", op, err)
}

// run submits a job with POST /run and returns its id. If ctx ends while
// the request is in flight, the job it creates is cancelled once its id is
// known, so an interrupted `worker call` leaves nothing running.
func (c *Client) run(ctx context.Context, req *Request) (string, error) {
	if req.Policy.LowPriority {
		// The SDK's Policy has no lowPriority: post the body ourselves.
		return c.rawRun(ctx, req)
	}
	in, err := req.inputMap()
	if err != nil {
		return "", err
	}
	ji := &sdkendpoint.JobInput{Input: in}
	if req.Webhook != "" {
		ji.Webhook = &req.Webhook
	}
	ji.Policy = req.Policy.sdk()
	ji.S3Config = req.S3Config.sdk()
	secs := c.sdkSeconds
	out, err := sdkCall(ctx, c, func() (*sdkendpoint.RunOutput, error) {
		out, err := c.sdk.Run(&sdkendpoint.RunInput{JobInput: ji, RequestTimeout: &secs})
		if err == nil && ctx.Err() != nil && out != nil && out.Id != nil && checkJobID(*out.Id) == nil {
			c.log.Info().Str("job_id", *out.Id).Msg("cancelling the job submitted while the call was being cancelled")
			if _, cerr := c.sdk.Cancel(&sdkendpoint.CancelInput{Id: out.Id, RequestTimeout: &secs}); cerr != nil {
				c.log.Warn().Str("job_id", *out.Id).Str("error", cerr.Error()).Msg("cancel failed")
			}
		}
		return out, err
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", c.sdkErr("run", err)
	}
	if out == nil || out.Id == nil {
		return "", fmt.Errorf("RunPod endpoint API /run: the answer has no job id")
	}
	if err := checkJobID(*out.Id); err != nil {
		return "", err
	}
	return *out.Id, nil
}

// status reads a job's status with the SDK's POST /status/{id}.
func (c *Client) status(ctx context.Context, id string) (*Result, error) {
	secs := c.sdkSeconds
	out, err := sdkCall(ctx, c, func() (*sdkendpoint.StatusOutput, error) {
		return c.sdk.Status(&sdkendpoint.StatusInput{Id: &id, RequestTimeout: &secs})
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// The SDK reads "error" into a *string, so any other JSON value
		// fails its decoding; read that answer again without the SDK.
		if strings.HasPrefix(err.Error(), "json decoder error") {
			return c.rawStatus(ctx, id)
		}
		return nil, c.sdkErr("status", err)
	}
	if out == nil || out.Status == nil {
		return nil, fmt.Errorf("RunPod endpoint API /status/%s: the answer has no status", id)
	}
	return fromSDK(id, out.Id, out.Status, out.Output, out.Error, out.DelayTime, out.ExecutionTime), nil
}

func fromSDK(id string, gotID, status *string, output *interface{}, errText *string, delay, exec *int) *Result {
	res := &Result{ID: id, Status: deref(status), Error: deref(errText)}
	if gotID != nil && *gotID != "" {
		res.ID = *gotID
	}
	if output != nil && *output != nil {
		// Re-encoding a value json.Unmarshal produced cannot fail.
		res.Output, _ = json.Marshal(*output)
	}
	if delay != nil {
		res.DelayTime = int64(*delay)
	}
	if exec != nil {
		res.ExecutionTime = int64(*exec)
	}
	return res
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Cancel asks the endpoint to cancel job id and returns the status it
// answers (CANCELLED, or the terminal state the job already reached).
func (c *Client) Cancel(ctx context.Context, id string) (string, error) {
	if err := checkJobID(id); err != nil {
		return "", err
	}
	secs := c.sdkSeconds
	out, err := sdkCall(ctx, c, func() (*sdkendpoint.CancelOutput, error) {
		return c.sdk.Cancel(&sdkendpoint.CancelInput{Id: &id, RequestTimeout: &secs})
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", c.sdkErr("cancel", err)
	}
	return deref(out.Status), nil
}

// cancelDetached cancels job id after the caller's context has ended; it
// gets its own RequestTimeout budget.
func (c *Client) cancelDetached(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout+time.Second)
	defer cancel()
	st, err := c.Cancel(ctx, id)
	if err != nil {
		c.log.Warn().Str("job_id", id).Str("error", err.Error()).Msg("could not cancel the job: it may still run and be billed; cancel it in the RunPod console")
		return
	}
	c.log.Info().Str("job_id", id).Str("status", st).Msg("job cancel sent")
}

// Health is the endpoint's /health answer.
type Health struct {
	Jobs    map[string]int `json:"jobs"`
	Workers map[string]int `json:"workers"`
}

// Health reads the endpoint's queue and worker counts.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	secs := c.sdkSeconds
	out, err := sdkCall(ctx, c, func() (*sdkendpoint.HealthOutput, error) {
		return c.sdk.Health(&sdkendpoint.HealthInput{RequestTimeout: &secs})
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, c.sdkErr("health", err)
	}
	h := &Health{Jobs: map[string]int{}, Workers: map[string]int{}}
	put := func(m map[string]int, k string, v *int) {
		if v != nil {
			m[k] = *v
		}
	}
	if j := out.Jobs; j != nil {
		put(h.Jobs, "completed", j.Completed)
		put(h.Jobs, "failed", j.Failed)
		put(h.Jobs, "inProgress", j.InProgress)
		put(h.Jobs, "inQueue", j.InQueue)
		put(h.Jobs, "retried", j.Retried)
	}
	if w := out.Workers; w != nil {
		put(h.Workers, "idle", w.Idle)
		put(h.Workers, "running", w.Running)
		put(h.Workers, "initializing", w.Initializing)
		put(h.Workers, "ready", w.Ready)
		put(h.Workers, "throttled", w.Throttled)
	}
	return h, nil
}
