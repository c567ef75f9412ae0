package endpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxAnswer bounds an API answer read into memory: a /runsync result may
// carry up to 20 MB of output.
const maxAnswer = 64 << 20

// DefaultSyncWait is how long /runsync holds the request (RunPod's default).
const DefaultSyncWait = 90 * time.Second

// do sends one request with c.cfg.HTTPClient and decodes a 200 answer into
// v. Other answers become *APIError with the start of the body.
func (c *Client) do(ctx context.Context, method, op, path string, query url.Values, body []byte, extra time.Duration, v any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout+extra)
	defer cancel()
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("RunPod endpoint API /%s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("RunPod endpoint API /%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("RunPod endpoint API /%s: read the answer: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &APIError{Op: op, EndpointID: c.cfg.EndpointID, StatusCode: resp.StatusCode, Body: snippet(data)}
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("RunPod endpoint API /%s: the answer is over %d MB", op, maxAnswer>>20)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("RunPod endpoint API /%s: the answer is not the expected JSON: %w", op, err)
	}
	return nil
}

// snippet is the start of an error body, on one line.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// wireStatus is a /runsync or /status answer as sent.
type wireStatus struct {
	ID            string          `json:"id"`
	Status        string          `json:"status"`
	Output        json.RawMessage `json:"output"`
	Error         json.RawMessage `json:"error"`
	DelayTime     float64         `json:"delayTime"`
	ExecutionTime float64         `json:"executionTime"`
	WorkerID      string          `json:"workerId"`
}

func (w *wireStatus) result() *Result {
	r := &Result{ID: w.ID, Status: w.Status, DelayTime: int64(w.DelayTime), ExecutionTime: int64(w.ExecutionTime), WorkerID: w.WorkerID}
	if len(w.Output) > 0 && string(w.Output) != "null" {
		r.Output = w.Output
	}
	if len(w.Error) > 0 && string(w.Error) != "null" {
		var s string
		if json.Unmarshal(w.Error, &s) == nil {
			r.Error = s
		} else {
			r.Error = string(w.Error)
		}
	}
	return r
}

// rawRun submits the job with POST /run, for what the SDK cannot send.
func (c *Client) rawRun(ctx context.Context, req *Request) (string, error) {
	body, err := req.wireBody()
	if err != nil {
		return "", err
	}
	var w wireStatus
	if err := c.do(ctx, http.MethodPost, "run", "/run", nil, body, 0, &w); err != nil {
		return "", err
	}
	if w.ID == "" {
		return "", fmt.Errorf("RunPod endpoint API /run: the answer has no job id")
	}
	if err := checkJobID(w.ID); err != nil {
		return "", err
	}
	return w.ID, nil
}

// runSync submits the job with POST /runsync?wait=<ms>. The answer is
// terminal, or IN_QUEUE / IN_PROGRESS when the wait window passed first.
func (c *Client) runSync(ctx context.Context, req *Request, wait time.Duration) (*Result, error) {
	body, err := req.wireBody()
	if err != nil {
		return nil, err
	}
	ms := min(max(wait.Milliseconds(), 1000), 300000)
	var w wireStatus
	q := url.Values{"wait": {strconv.FormatInt(ms, 10)}}
	if err := c.do(ctx, http.MethodPost, "runsync", "/runsync", q, body, time.Duration(ms)*time.Millisecond, &w); err != nil {
		return nil, err
	}
	if w.ID == "" || w.Status == "" {
		return nil, fmt.Errorf("RunPod endpoint API /runsync: the answer has no job id or status")
	}
	if err := checkJobID(w.ID); err != nil {
		return nil, err
	}
	return w.result(), nil
}

// streamAnswer is a /stream answer.
type streamAnswer struct {
	Status string `json:"status"`
	Stream []struct {
		Output json.RawMessage `json:"output"`
	} `json:"stream"`
}

// stream reads the partial outputs streamed since the last read.
func (c *Client) stream(ctx context.Context, id string) (string, []json.RawMessage, error) {
	var a streamAnswer
	if err := c.do(ctx, http.MethodGet, "stream", "/stream/"+url.PathEscape(id), nil, nil, 0, &a); err != nil {
		return "", nil, err
	}
	chunks := make([]json.RawMessage, 0, len(a.Stream))
	for _, s := range a.Stream {
		chunks = append(chunks, s.Output)
	}
	return a.Status, chunks, nil
}

// rawStatus reads a job's status without the SDK, keeping every JSON value.
func (c *Client) rawStatus(ctx context.Context, id string) (*Result, error) {
	var w wireStatus
	if err := c.do(ctx, http.MethodGet, "status", "/status/"+url.PathEscape(id), nil, nil, 0, &w); err != nil {
		return nil, err
	}
	if w.Status == "" {
		return nil, fmt.Errorf("RunPod endpoint API /status/%s: the answer has no status", id)
	}
	if w.ID == "" {
		w.ID = id
	}
	return w.result(), nil
}
