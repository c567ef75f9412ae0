package comfy

import (
	"context"
	"time"
)

// partial collects, after a node raised, the files that the nodes which
// had finished wrote: ComfyUI keeps them in the failed prompt's history.
// Callers that return partial results (worker-comfyui's clients get the
// images saved before the error) deliver them; nil when the history
// cannot be read or the files cannot be fetched (a node served from the
// cache lists a file an earlier job's cleanup removed), which leaves just
// the error.
func (c *Client) partial(ctx context.Context, ee *ExecutionError, promptID string, opts RunOptions, start time.Time, res *Result) *Result {
	if ctx.Err() != nil {
		return nil
	}
	if ee.PromptID != "" {
		promptID = ee.PromptID
	}
	st := newRunState(promptID, nil, nil, start)
	// The socket reports the error before the history is stored; this
	// waits for the entry (and returns the same error, which is known).
	c.historyAfterDone(ctx, st)
	if st.entry == nil {
		c.log.Debug().Str("prompt_id", promptID).Msg("no history for the failed prompt; no partial outputs")
		return nil
	}
	if err := c.finishResult(ctx, res, st, opts, start); err != nil {
		c.log.Warn().Err(err).Str("prompt_id", promptID).Msg("the outputs written before the failure could not be collected")
		return nil
	}
	return res
}
