package runpod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"time"
)

// HTTPStatusError is a non-2xx answer from the job API.
type HTTPStatusError struct {
	Op         string // "job-take", "job-done", "ping", "job-stop"
	StatusCode int
	Body       string // the start of the response body
}

func (e *HTTPStatusError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d", e.Op, e.StatusCode)
	switch e.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += " (check RUNPOD_AI_API_KEY)"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Temporary reports whether retrying may help: 5xx, 408 and 429.
func (e *HTTPStatusError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
}

// errTooManyRequests is a 429 on job-take or the stop channel.
var errTooManyRequests = errors.New("HTTP 429 Too Many Requests")

// maxJobBody bounds a job-take answer; RunPod's own payload limit is 20 MB.
const maxJobBody = 64 << 20

// client sends the job API's requests with the SDK's headers.
type client struct {
	hc  *http.Client
	key string
	ua  string
}

func userAgent(c Config) string {
	ua := fmt.Sprintf("RunPod-Go-Worker/%s (%s; %s) Language/Go %s", c.Version, runtime.GOOS, runtime.GOARCH, runtime.Version())
	if c.Integration != "" {
		ua += " Integration/" + c.Integration
	}
	return ua
}

// kind selects the header set of a call, as the SDK sends them.
type kind int

const (
	kindPoll kind = iota // job-take and job-stop: JSON content type, no body
	kindPost             // job-done: JSON body under a form content type
	kindPing             // heartbeat: a different client in the SDK, fewer headers
)

func (c *client) newRequest(ctx context.Context, method, url string, k kind, body body, jobID string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = int64(body.len())
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body.reader()), nil }
		req.Body, _ = req.GetBody()
	}
	h := req.Header
	if c.key != "" {
		h["Authorization"] = []string{c.key}
	}
	h["User-Agent"] = []string{c.ua}
	switch k {
	case kindPoll:
		h["Accept"] = []string{"*/*"}
		h["Content-Type"] = []string{"application/json"}
	case kindPost:
		h["Accept"] = []string{"*/*"}
		// The SDK's exact (odd) headers: the body is JSON regardless.
		h["Content-Type"] = []string{"application/x-www-form-urlencoded"}
		h["Charset"] = []string{"utf-8"}
		h["X-Request-Id"] = []string{jobID}
	}
	return req, nil
}

// do sends req and returns the body of a 2xx answer (up to limit bytes), or
// an *HTTPStatusError.
func (c *client) do(req *http.Request, op string, limit int64) (int, []byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, nil, &HTTPStatusError{Op: op, StatusCode: resp.StatusCode, Body: string(bytes.TrimSpace(snippet))}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s: read answer: %w", op, err)
	}
	return resp.StatusCode, body, nil
}

// takenJob is one entry of a job-take answer; problem says why it cannot run.
type takenJob struct {
	Job
	problem string
}

// take performs one job-take. It returns no jobs (and no error) for the
// "nothing for you" answers: 204, 400, a client-side long-poll timeout, and
// a 200 that is not a JSON job.
func (c *client) take(ctx context.Context, url string, timeout time.Duration) ([]takenJob, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.newRequest(rctx, http.MethodGet, url, kindPoll, nil, "")
	if err != nil {
		return nil, err
	}
	status, body, err := c.do(req, "job-take", maxJobBody)
	switch {
	case status == http.StatusNoContent, status == http.StatusBadRequest:
		return nil, nil
	case status == http.StatusTooManyRequests:
		return nil, errTooManyRequests
	case err != nil:
		if ctx.Err() == nil && rctx.Err() != nil {
			return nil, nil // our long-poll timeout: ask again
		}
		return nil, err
	}
	return decodeJobs(body), nil
}

type wireJob struct {
	ID    string          `json:"id"`
	Input json.RawMessage `json:"input"`
}

// decodeJobs reads a job object or a list of them; anything else means no job.
func decodeJobs(body []byte) []takenJob {
	body = bytes.TrimSpace(body)
	var wire []wireJob
	switch {
	case len(body) == 0:
		return nil
	case body[0] == '{':
		var one wireJob
		if json.Unmarshal(body, &one) != nil {
			return nil
		}
		wire = []wireJob{one}
	case body[0] == '[':
		if json.Unmarshal(body, &wire) != nil {
			return nil
		}
	default:
		return nil
	}
	out := make([]takenJob, len(wire))
	for i, w := range wire {
		out[i] = takenJob{Job: Job{ID: w.ID, Input: w.Input}}
		if w.ID == "" || w.Input == nil {
			out[i].problem = "job has missing field(s): id or input"
		}
	}
	return out
}

// body is a request body in pieces, so that a large result is sent
// without first being copied into one buffer; a piece may be a JSONStream,
// encoded while it is sent.
type body []part

type part struct {
	b []byte
	s JSONStream
}

func (b body) len() int {
	n := 0
	for _, p := range b {
		if p.s != nil {
			n += int(p.s.Len())
		} else {
			n += len(p.b)
		}
	}
	return n
}

func (b body) reader() io.Reader {
	rs := make([]io.Reader, len(b))
	for i, p := range b {
		if p.s != nil {
			rs[i] = p.s.NewReader()
		} else {
			rs[i] = bytes.NewReader(p.b)
		}
	}
	return io.MultiReader(rs...)
}

// bytes joins the pieces (for printing, and tests).
func (b body) bytes() []byte {
	out, _ := io.ReadAll(b.reader())
	return out
}

// post sends one job-done body once.
func (c *client) post(ctx context.Context, url, jobID string, body body) error {
	req, err := c.newRequest(ctx, http.MethodPost, url, kindPost, body, jobID)
	if err != nil {
		return err
	}
	_, _, err = c.do(req, "job-done", 4<<10)
	return err
}

// ping sends one heartbeat.
func (c *client) ping(ctx context.Context, url string) error {
	req, err := c.newRequest(ctx, http.MethodGet, url, kindPing, nil, "")
	if err != nil {
		return err
	}
	_, _, err = c.do(req, "ping", 4<<10)
	return err
}

// pollStop asks which jobs to stop; a 204 or an empty answer means none.
func (c *client) pollStop(ctx context.Context, url string, timeout time.Duration) ([]string, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.newRequest(rctx, http.MethodGet, url, kindPoll, nil, "")
	if err != nil {
		return nil, err
	}
	status, body, err := c.do(req, "job-stop", 1<<20)
	switch {
	case status == http.StatusTooManyRequests:
		return nil, errTooManyRequests
	case err != nil:
		if ctx.Err() == nil && rctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	case len(bytes.TrimSpace(body)) == 0:
		return nil, nil
	}
	var ans struct {
		JobsToStop []string `json:"jobsToStop"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("job-stop: answer is not {\"jobsToStop\": [...]}: %w", err)
	}
	return ans.JobsToStop, nil
}

// backoff is exponential with "equal jitter": each wait is half the current
// step plus a random part of the other half, so retries from many workers
// spread out but never collapse to zero.
type backoff struct {
	initial, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.initial
	} else if b.cur < b.max {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }
