package endpoint

import (
	"context"
)

// Invocation is what `worker call` gets back.
type Invocation struct {
	// Result is the job's last known status; nil when it was never
	// submitted.
	Result *Result
	// Files are the paths written into the output directory.
	Files []string
}

// Invoke is `worker call`: it parses a request document (test_input.json:
// {"input": {...}} or a bare input object), runs the job, and when outDir
// is not empty writes the result's files there. The Result comes back
// even when the job failed, so the caller can print it; files are written
// only for a COMPLETED job.
func (c *Client) Invoke(ctx context.Context, document []byte, opts CallOptions, outDir string) (*Invocation, error) {
	req, err := ParseRequest(document)
	if err != nil {
		return nil, err
	}
	res, err := c.CallRequest(ctx, req, opts)
	inv := &Invocation{Result: res}
	if err != nil {
		return inv, err
	}
	if outDir != "" {
		inv.Files, err = c.WriteOutputs(ctx, res.Output, outDir)
	}
	return inv, err
}
