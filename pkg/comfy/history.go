package comfy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// historyEntry is one prompt in GET /history/{id}.
type historyEntry struct {
	// Outputs is node id → UI dict, kept raw: custom nodes put anything
	// there.
	Outputs map[string]json.RawMessage `json:"outputs"`
	Status  *historyStatus             `json:"status"`
}

type historyStatus struct {
	StatusStr string            `json:"status_str"`
	Completed bool              `json:"completed"`
	Messages  []json.RawMessage `json:"messages"`
}

type historyMessage struct {
	event string
	data  json.RawMessage
}

// messages decodes the [event, data] pairs, skipping malformed ones.
func (s *historyStatus) messages() []historyMessage {
	var out []historyMessage
	for _, raw := range s.Messages {
		var pair []json.RawMessage
		if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 {
			continue
		}
		var ev string
		if json.Unmarshal(pair[0], &ev) != nil {
			continue
		}
		out = append(out, historyMessage{event: ev, data: pair[1]})
	}
	return out
}

// history fetches a prompt's entry; nil (no error) while ComfyUI has none,
// which it answers with {} rather than 404.
func (c *Client) history(ctx context.Context, promptID string) (*historyEntry, error) {
	body, _, err := c.do(ctx, http.MethodGet, "/history/"+url.PathEscape(promptID), nil)
	if err != nil {
		return nil, err
	}
	var all map[string]*historyEntry
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, fmt.Errorf("decode ComfyUI history of %s: %w", promptID, err)
	}
	return all[promptID], nil
}

// historyAfterDone reads the entry once the socket said the prompt is
// finished. A real ComfyUI can say so a moment before the entry is stored,
// so an empty answer is retried briefly instead of read as "no outputs".
func (c *Client) historyAfterDone(ctx context.Context, st *runState) error {
	deadline := time.Now().Add(c.cfg.HistoryWait)
	backoff := 5 * time.Millisecond
	for {
		entry, err := c.history(ctx, st.promptID)
		if err != nil {
			if ctx.Err() != nil {
				return c.abort(ctx, st)
			}
			return c.explain(ctx, st.promptID, err)
		}
		if entry != nil {
			return st.decide(entry)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ComfyUI finished prompt %s but kept no history for it after %s (was the history cleared?)", st.promptID, c.cfg.HistoryWait)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return c.abort(ctx, st)
		case <-c.procDone():
			t.Stop()
			return c.crashed(st.promptID)
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}
