package comfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// maxPollFailures is how many history polls in a row may fail (with no
// Process to say ComfyUI died) before the run gives up.
const maxPollFailures = 20

// wait follows the prompt until it is finished and its history decided.
// The socket is the fast path; when it drops (or says nothing for
// SilenceTimeout) history is polled. A deadline interrupts the prompt; a
// dying process fails it at once.
func (c *Client) wait(ctx context.Context, sub *subscription, st *runState) error {
	var news <-chan struct{}
	if sub != nil {
		news = sub.ready
	}
	silence := time.NewTimer(c.cfg.SilenceTimeout)
	defer silence.Stop()
	poll := time.NewTimer(time.Hour)
	poll.Stop()
	defer poll.Stop()
	if sub == nil {
		poll.Reset(0)
	}
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return c.abort(ctx, st)
		case <-c.procDone():
			return c.crashed(st.promptID)
		case <-news:
			msgs, closed, sockErr := sub.take()
			if len(msgs) > 0 {
				if !silence.Stop() {
					// Socket alive again after a silence: stop polling.
					poll.Stop()
				}
				silence.Reset(c.cfg.SilenceTimeout)
			}
			for _, m := range msgs {
				done, err := st.handle(m)
				if err != nil {
					return err
				}
				if done {
					return c.historyAfterDone(ctx, st)
				}
			}
			if closed {
				news = nil
				c.log.Warn().Err(sockErr).Str("prompt_id", st.promptID).Msg("ComfyUI WebSocket closed; polling history")
				poll.Reset(0)
			}
		case <-silence.C:
			c.log.Debug().Str("prompt_id", st.promptID).Int64("silent_for_ms", c.cfg.SilenceTimeout.Milliseconds()).Msg("ComfyUI WebSocket silent; polling history")
			poll.Reset(0)
		case <-poll.C:
			entry, err := c.history(ctx, st.promptID)
			switch {
			case err != nil && ctx.Err() != nil:
				continue
			case err != nil:
				failures++
				var he *HTTPError
				if failures >= maxPollFailures || errors.As(err, &he) {
					return c.explain(ctx, st.promptID, fmt.Errorf("follow prompt %s: %w", st.promptID, err))
				}
			case entry != nil:
				return st.decide(entry)
			default:
				failures = 0
			}
			poll.Reset(c.cfg.PollInterval)
		}
	}
}

// abort is the deadline (or cancellation) path: take the prompt out of the
// queue if it has not started, interrupt it if it has, and wait briefly for
// ComfyUI to be done with it so the next job starts on an idle server.
func (c *Client) abort(ctx context.Context, st *runState) error {
	cause := ctx.Err()
	st.asked = true
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.InterruptGrace)
	defer cancel()
	c.do(actx, http.MethodPost, "/queue", map[string]any{"delete": []string{st.promptID}})
	// ComfyUI since 2025-09 interrupts only the named prompt; older versions
	// ignore the body and interrupt whatever runs, which in worker mode is
	// this prompt.
	c.do(actx, http.MethodPost, "/interrupt", map[string]any{"prompt_id": st.promptID})
	gone := c.awaitGone(actx, st.promptID)
	c.log.Warn().Str("prompt_id", st.promptID).Bool("stopped", gone).Err(cause).Msg("prompt interrupted")
	if errors.Is(cause, context.DeadlineExceeded) {
		return &TimeoutError{PromptID: st.promptID, After: time.Since(st.start), Stage: "execute", Interrupted: gone}
	}
	return fmt.Errorf("prompt %s cancelled (interrupted: %t): %w", st.promptID, gone, cause)
}

// awaitGone polls /queue until the prompt is neither running nor pending.
func (c *Client) awaitGone(ctx context.Context, promptID string) bool {
	for {
		body, _, err := c.do(ctx, http.MethodGet, "/queue", nil)
		if err == nil && !inQueue(body, promptID) {
			return true
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		case <-c.procDone():
			t.Stop()
			return false
		}
	}
}

func inQueue(body []byte, promptID string) bool {
	var q struct {
		Running [][]json.RawMessage `json:"queue_running"`
		Pending [][]json.RawMessage `json:"queue_pending"`
	}
	if json.Unmarshal(body, &q) != nil {
		return true
	}
	for _, item := range append(q.Running, q.Pending...) {
		var id string
		if len(item) > 1 && json.Unmarshal(item[1], &id) == nil && id == promptID {
			return true
		}
	}
	return false
}
