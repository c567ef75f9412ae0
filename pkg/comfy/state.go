package comfy

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/runpod-comfy/worker/pkg/progress"
)

// runState is what one prompt's messages have told so far.
type runState struct {
	promptID   string
	wf         Workflow
	report     progress.Func
	start      time.Time // of the whole Run, for timeouts
	submitted  time.Time
	startedAt  time.Time
	nodeErrors []NodeError

	cached    []string
	started   map[string]bool
	success   bool
	asked     bool // we interrupted it
	entry     *historyEntry
	queued    time.Duration
	executed  time.Duration
	finalized bool
	// nodeTimes is the wall time of each node that ran, from its
	// executing message to the next one (ComfyUI runs one node at a time).
	nodeTimes map[string]time.Duration
	current   string
	currentAt time.Time
	// sawEnd is set by executing{node: null}: the socket saw every node.
	sawEnd bool
}

func newRunState(promptID string, wf Workflow, report progress.Func, start time.Time) *runState {
	return &runState{promptID: promptID, wf: wf, report: report, start: start, started: map[string]bool{}, nodeTimes: map[string]time.Duration{}}
}

// Payloads of the messages the client reads.
type (
	promptRef struct {
		PromptID *string `json:"prompt_id"`
	}
	executingData struct {
		Node     *string `json:"node"`
		PromptID *string `json:"prompt_id"`
	}
	cachedData struct {
		Nodes []string `json:"nodes"`
	}
	progressData struct {
		Value float64 `json:"value"`
		Max   float64 `json:"max"`
		Node  *string `json:"node"`
	}
	interruptedData struct {
		NodeID   string `json:"node_id"`
		NodeType string `json:"node_type"`
	}
)

// mine reports whether a message belongs to this prompt. Messages without
// a prompt_id (e.g. executing on reconnect) are not trusted.
func (st *runState) mine(data json.RawMessage) bool {
	var ref promptRef
	return json.Unmarshal(data, &ref) == nil && ref.PromptID != nil && *ref.PromptID == st.promptID
}

func (st *runState) emit(e progress.Event) {
	e.Task = "comfy"
	st.report.Report(e)
}

func (st *runState) overall(msg string) {
	st.emit(progress.Event{Done: int64(len(st.started)), Total: int64(len(st.wf)), Unit: "nodes", Message: msg})
}

// handle applies one socket message. done is set by executing{node: null}
// for this prompt; err by a terminal failure.
func (st *runState) handle(m wsMessage) (done bool, err error) {
	switch m.Type {
	case "execution_start":
		if st.mine(m.Data) {
			st.markStarted(time.Now())
			st.overall("started")
		}
	case "execution_cached":
		var d cachedData
		if st.mine(m.Data) && json.Unmarshal(m.Data, &d) == nil {
			st.cached = d.Nodes
			for _, n := range d.Nodes {
				st.started[n] = true
			}
			if len(d.Nodes) > 0 {
				st.overall("cached")
			}
		}
	case "executing":
		var d executingData
		if json.Unmarshal(m.Data, &d) != nil || d.PromptID == nil || *d.PromptID != st.promptID {
			return false, nil
		}
		if d.Node == nil {
			st.sawEnd = true
			st.markFinished(time.Now())
			st.emit(progress.Event{Done: int64(len(st.wf)), Total: int64(len(st.wf)), Unit: "nodes", Finished: true, Message: "finished"})
			return true, nil
		}
		now := time.Now()
		st.markStarted(now)
		st.nodeDone(now)
		st.current, st.currentAt = *d.Node, now
		st.started[*d.Node] = true
		class := ""
		if n := st.wf[*d.Node]; n != nil {
			class = n.ClassType
		}
		st.emit(progress.Event{Item: *d.Node, Message: class})
		st.overall(class)
	case "progress":
		var d progressData
		if json.Unmarshal(m.Data, &d) != nil || d.Node == nil {
			return false, nil
		}
		if ref := (promptRef{}); json.Unmarshal(m.Data, &ref) == nil && ref.PromptID != nil && *ref.PromptID != st.promptID {
			return false, nil
		}
		st.emit(progress.Event{Item: *d.Node, Done: int64(d.Value), Total: int64(d.Max), Unit: "steps", Finished: d.Max > 0 && d.Value >= d.Max})
	case "execution_success":
		if st.mine(m.Data) {
			st.success = true
		}
	case "execution_error":
		var d execErrorData
		if !st.mine(m.Data) || json.Unmarshal(m.Data, &d) != nil || d.isBlocked() {
			return false, nil
		}
		st.markFinished(time.Now())
		return false, d.toError()
	case "execution_interrupted":
		var d interruptedData
		if !st.mine(m.Data) || json.Unmarshal(m.Data, &d) != nil {
			return false, nil
		}
		st.markFinished(time.Now())
		return false, &InterruptedError{PromptID: st.promptID, NodeID: d.NodeID, NodeType: d.NodeType}
	}
	return false, nil
}

func (st *runState) markStarted(t time.Time) {
	if st.startedAt.IsZero() {
		st.startedAt = t
		st.queued = t.Sub(st.submitted)
	}
}

// nodeDone closes the running node's time at t.
func (st *runState) nodeDone(t time.Time) {
	if st.current != "" {
		st.nodeTimes[st.current] += t.Sub(st.currentAt)
		st.current = ""
	}
}

func (st *runState) markFinished(t time.Time) {
	if st.finalized {
		return
	}
	st.finalized = true
	st.nodeDone(t)
	if st.startedAt.IsZero() {
		// The socket missed the start (dropped or silent): count it all as
		// execution.
		st.startedAt = st.submitted
	}
	st.executed = t.Sub(st.startedAt)
}

// cachedNodes merges what the socket and the history say was cached.
func (st *runState) cachedNodes() []string {
	set := st.cachedSet()
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sortNodeIDs(out)
	return out
}

func (st *runState) cachedSet() map[string]bool {
	set := map[string]bool{}
	for _, n := range st.cached {
		set[n] = true
	}
	if st.entry != nil && st.entry.Status != nil {
		for _, m := range st.entry.Status.messages() {
			var d cachedData
			if m.event == "execution_cached" && json.Unmarshal(m.data, &d) == nil {
				for _, n := range d.Nodes {
					set[n] = true
				}
			}
		}
	}
	return set
}

// decide judges a history entry from status_str and status.messages,
// never from the mere presence of outputs (a failed prompt has outputs
// too).
func (st *runState) decide(e *historyEntry) error {
	st.entry = e
	st.markFinished(time.Now())
	if e.Status == nil {
		if st.success {
			return nil
		}
		return &ExecutionError{PromptID: st.promptID, ExceptionMessage: "ComfyUI's history for the prompt has no status, so its success cannot be confirmed"}
	}
	msgs := e.Status.messages()
	for _, m := range msgs {
		switch m.event {
		case "execution_error":
			var d execErrorData
			if json.Unmarshal(m.data, &d) == nil && !d.isBlocked() {
				return d.toError()
			}
		case "execution_interrupted":
			var d interruptedData
			json.Unmarshal(m.data, &d)
			return &InterruptedError{PromptID: st.promptID, NodeID: d.NodeID, NodeType: d.NodeType}
		}
	}
	if e.Status.StatusStr == "success" {
		return nil
	}
	if e.Status.StatusStr == "" && e.Status.Completed && slices.ContainsFunc(msgs, func(m historyMessage) bool { return m.event == "execution_success" }) {
		return nil
	}
	return &ExecutionError{PromptID: st.promptID, ExceptionMessage: "ComfyUI reported status " + quoteOr(e.Status.StatusStr, "(none)") + " without an error message"}
}

func quoteOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return `"` + s + `"`
}
