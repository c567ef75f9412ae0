package endpointtest

import (
	"encoding/json"
	"net/url"
)

// Job states.
const (
	StatusInQueue    = "IN_QUEUE"
	StatusInProgress = "IN_PROGRESS"
	StatusCompleted  = "COMPLETED"
	StatusFailed     = "FAILED"
	StatusCancelled  = "CANCELLED"
	StatusTimedOut   = "TIMED_OUT"
)

func terminal(s string) bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled || s == StatusTimedOut
}

// Behavior scripts a job. The job moves forward by observations: each
// /status request and the /runsync answer is one; /stream only looks.
// Observation n (from 0) shows IN_QUEUE while n < Queued, IN_PROGRESS
// while n < Queued+Running, and the terminal state after that.
type Behavior struct {
	Queued, Running int
	// Progress are the outputs shown while IN_PROGRESS, one per
	// observation; the last repeats. Empty: no output while running.
	Progress []json.RawMessage
	// Output is the result (COMPLETED) or the details next to Error.
	Output json.RawMessage
	// Error makes the job end FAILED (or Final) with this error string.
	Error string
	// ErrorJSON, when set, is sent as the raw "error" value instead.
	ErrorJSON json.RawMessage
	// Final overrides the terminal status (TIMED_OUT, CANCELLED, FAILED).
	Final string
	// Forever keeps the job IN_PROGRESS until it is cancelled.
	Forever bool
	// Stream are the chunks /stream hands out: one more becomes available
	// per observation, all of them once the job is terminal.
	Stream []json.RawMessage
}

// Job is a job the fake holds, as submitted and as it stands.
type Job struct {
	ID       string
	Sync     bool
	Input    json.RawMessage
	Webhook  string
	Policy   json.RawMessage
	Query    url.Values // of the submitting request (?wait= on /runsync)
	Status   string
	Observed int
	// Cancelled is set by /cancel on a job that was not yet terminal.
	Cancelled bool
	Behavior  Behavior
	streamed  int
}

// state is what observation n of j shows.
func (j *Job) state() string {
	if j.Cancelled {
		return StatusCancelled
	}
	b := j.Behavior
	switch {
	case j.Observed < b.Queued:
		return StatusInQueue
	case b.Forever || j.Observed < b.Queued+b.Running:
		return StatusInProgress
	case b.Final != "":
		return b.Final
	case b.Error != "" || b.ErrorJSON != nil:
		return StatusFailed
	}
	return StatusCompleted
}

// view is the /status body for j's current state.
func (j *Job) view() map[string]any {
	st := j.state()
	j.Status = st
	body := map[string]any{"id": j.ID, "status": st, "delayTime": 12}
	if st != StatusInQueue {
		body["workerId"] = "fake-worker-1"
		body["executionTime"] = 34
	}
	b := j.Behavior
	switch {
	case st == StatusInProgress && len(b.Progress) > 0:
		i := min(j.Observed-b.Queued, len(b.Progress)-1)
		body["output"] = b.Progress[max(i, 0)]
	case st == StatusCompleted:
		out := b.Output
		if out == nil {
			out = json.RawMessage(`{}`)
		}
		body["output"] = out
	case terminal(st) && !j.Cancelled:
		if b.Output != nil {
			body["output"] = b.Output
		}
		switch {
		case b.ErrorJSON != nil:
			body["error"] = b.ErrorJSON
		case b.Error != "":
			body["error"] = b.Error
		}
	}
	return body
}

// observe advances j by one observation and returns the view before it.
func (j *Job) observe() map[string]any {
	v := j.view()
	if !terminal(j.Status) {
		j.Observed++
	}
	return v
}

// takeStream returns the chunks that became available since the last read.
func (j *Job) takeStream() []map[string]json.RawMessage {
	avail := min(j.Observed, len(j.Behavior.Stream))
	if terminal(j.state()) {
		avail = len(j.Behavior.Stream)
	}
	out := []map[string]json.RawMessage{}
	for ; j.streamed < avail; j.streamed++ {
		out = append(out, map[string]json.RawMessage{"output": j.Behavior.Stream[j.streamed]})
	}
	return out
}
