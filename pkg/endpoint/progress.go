package endpoint

import (
	"encoding/json"
	"fmt"

	"github.com/runpod-comfy/worker/pkg/progress"
)

// Update is a change in a job seen while waiting for it: a new status, or
// a new progress update (the status's output while IN_PROGRESS).
type Update struct {
	JobID  string
	Status string
	// Progress is the worker's last progress update, raw; nil when none.
	// This worker sends {"stage": "realize"|"execute", ...} with node,
	// value, max and percent while ComfyUI runs, and task, item, done,
	// total and unit while models download.
	Progress json.RawMessage
}

// Event renders u for the displays of pkg/progress. Task is "job", Item
// the job id; Done/Total come from the worker's value/max or done/total.
func (u Update) Event() progress.Event {
	e := progress.Event{Task: "job", Item: u.JobID, Message: u.Status, Finished: Terminal(u.Status)}
	if len(u.Progress) == 0 {
		return e
	}
	var p struct {
		Stage string `json:"stage"`
		Node  string `json:"node"`
		Item  string `json:"item"`
		Value *int64 `json:"value"`
		Max   *int64 `json:"max"`
		Done  *int64 `json:"done"`
		Total *int64 `json:"total"`
		Unit  string `json:"unit"`
	}
	if json.Unmarshal(u.Progress, &p) != nil {
		e.Message = fmt.Sprintf("%s: %s", u.Status, snippet(u.Progress))
		return e
	}
	switch {
	case p.Value != nil:
		e.Done, e.Total = *p.Value, deref64(p.Max)
	case p.Done != nil:
		e.Done, e.Total = *p.Done, deref64(p.Total)
	}
	e.Unit = p.Unit
	if p.Stage != "" {
		e.Message = u.Status + ": " + p.Stage
		if p.Node != "" {
			e.Message += " node " + p.Node
		} else if p.Item != "" {
			e.Message += " " + p.Item
		}
	}
	return e
}

func deref64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
