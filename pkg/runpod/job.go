package runpod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/runpod-comfy/worker/internal/jsonx"
)

// Job is one request taken from RunPod (or from a local test input).
type Job struct {
	// ID is RunPod's request id.
	ID string
	// Input is the request's "input", verbatim. It may be JSON null.
	Input json.RawMessage
}

// Result is what a handler returns. RunPod treats a result with an Error as
// FAILED and shows Error to the caller; Output then carries the structured
// details (error type, node, ...), which RunPod keeps beside the error.
type Result struct {
	// Output is any value encoding/json can marshal. A json.RawMessage is
	// sent as is, without being re-validated or re-encoded; it must be
	// valid JSON. A JSONStream is encoded while it is sent. Nil on success
	// encodes as "output": null, like the SDK.
	Output any
	// Error is one readable line saying what went wrong and what to do.
	Error string
	// RefreshWorker asks RunPod to replace this worker after the job
	// ("stopPod": true); the worker then takes no further jobs.
	RefreshWorker bool
}

// JSONStream is an Output encoded while it is sent, never held whole in
// memory (see output.Rendered): Len bytes of valid JSON, produced afresh by
// each NewReader, since a result may be posted more than once.
type JSONStream interface {
	Len() int64
	NewReader() io.Reader
}

// Failed reports whether r is a failure.
func (r Result) Failed() bool { return r.Error != "" }

// Progress sends in-progress updates for one job. Update never blocks on the
// network: it keeps only the newest value while an earlier one is in flight.
// Callers should still throttle (the job handler sends at most a few per
// second). Implementations are safe for concurrent use.
type Progress interface {
	Update(v any)
}

// ProgressFunc adapts a function to Progress.
type ProgressFunc func(v any)

// Update calls f.
func (f ProgressFunc) Update(v any) { f(v) }

// NopProgress discards updates.
var NopProgress Progress = ProgressFunc(func(any) {})

// Handler runs one job. ctx is cancelled when RunPod stops the job (cause
// ErrJobStopped) or when shutdown's grace period ends (cause ErrShutdown);
// the handler should then return promptly with a failed Result.
type Handler func(ctx context.Context, job Job, p Progress) Result

// Causes of a job context's cancellation; read with context.Cause.
var (
	// ErrJobStopped: RunPod asked through the stop channel to stop the job
	// (the request was cancelled or timed out). No result is posted.
	ErrJobStopped = errors.New("runpod stopped the job (request cancelled or timed out)")
	// ErrShutdown: the worker is shutting down and the job's grace period
	// is over.
	ErrShutdown = errors.New("worker is shutting down")
)

// callHandler runs h and turns a panic into a failed Result with the stack in
// its details, so a handler bug fails one job instead of the worker.
func callHandler(ctx context.Context, h Handler, job Job, p Progress, info workerInfo) (res Result) {
	defer func() {
		if v := recover(); v != nil {
			msg := strings.Join(strings.Fields(fmt.Sprint(v)), " ")
			res = Result{
				Error: "internal error: the job handler crashed: " + msg,
				Output: map[string]any{
					"error_type":      "internal",
					"error_message":   msg,
					"error_traceback": string(debug.Stack()),
					"hostname":        info.hostname,
					"worker_id":       info.workerID,
					"runpod_version":  info.runpodVersion,
				},
			}
		}
	}()
	return h(ctx, job, p)
}

// workerInfo is what internal-error reports carry, like the SDK's.
type workerInfo struct {
	hostname, workerID, runpodVersion string
}

// encodeResult builds the job-done body in the SDK's shapes:
//
//	success         {"output": X}
//	failure         {"error": "msg"} or {"output": details, "error": "msg"}
//	refresh_worker  ... plus "stopPod": true
//
// An Output that cannot be encoded becomes a failure rather than a lost
// result. The output is its own piece of the body, never copied.
func encodeResult(r Result) body {
	var out []byte // the "output" value; nil when the body has none
	stream, _ := r.Output.(JSONStream)
	if stream != nil {
		out = []byte{} // sent as its own piece, below
	} else if r.Output != nil || r.Error == "" {
		var err error
		if out, err = marshalOutput(r.Output); err != nil {
			return encodeResult(Result{
				Error:         "internal error: the job's output could not be encoded as JSON: " + err.Error(),
				Output:        map[string]any{"error_type": "internal"},
				RefreshWorker: r.RefreshWorker,
			})
		}
	}
	head, sep := []byte("{"), ""
	if out != nil {
		head, sep = []byte(`{"output": `), ", "
	}
	var tail []byte
	if r.Error != "" {
		msg, _ := marshal(r.Error)
		tail = append(append(tail, sep+`"error": `...), msg...)
		sep = ", "
	}
	if r.RefreshWorker {
		tail = append(tail, sep+`"stopPod": true`...)
	}
	tail = append(tail, '}')
	switch {
	case out == nil:
		return body{{b: append(head, tail...)}}
	case stream != nil:
		return body{{b: head}, {s: stream}, {b: tail}}
	}
	return body{{b: head}, {b: out}, {b: tail}}
}

// encodeProgress builds a progress body: {"status": "IN_PROGRESS", "output": v}.
func encodeProgress(v any) (body, error) {
	out, err := marshal(v)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(out)+40)
	b = append(b, `{"status": "IN_PROGRESS", "output": `...)
	b = append(b, out...)
	return body{{b: append(b, '}')}}, nil
}

// marshalOutput is marshal, except that a json.RawMessage is taken as is
// and a JSONStream is read whole.
func marshalOutput(v any) ([]byte, error) {
	switch v := v.(type) {
	case json.RawMessage:
		if len(v) > 0 {
			return v, nil
		}
	case JSONStream:
		return io.ReadAll(v.NewReader())
	}
	return marshal(v)
}

// marshal is json.Marshal without HTML escaping (see jsonx).
var marshal = jsonx.Marshal
