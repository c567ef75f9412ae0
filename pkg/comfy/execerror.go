package comfy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ExecutionError is a node raising an exception while the prompt ran
// (ComfyUI's execution_error message).
type ExecutionError struct {
	PromptID         string `json:"prompt_id"`
	NodeID           string `json:"node_id"`
	NodeType         string `json:"node_type"`
	ExceptionType    string `json:"exception_type"`
	ExceptionMessage string `json:"exception_message"`
	// Traceback is the tail of the Python traceback, bounded in size.
	Traceback []string `json:"traceback"`
	// CurrentInputs are the node's inputs as ComfyUI printed them, each
	// truncated (tensor reprs can be megabytes).
	CurrentInputs map[string]string `json:"current_inputs,omitempty"`
	// Executed lists the nodes that had finished before the failure.
	Executed []string `json:"executed,omitempty"`
}

func (e *ExecutionError) Error() string {
	var b strings.Builder
	if e.NodeID != "" {
		fmt.Fprintf(&b, "ComfyUI node %s (%s) failed", e.NodeID, e.NodeType)
	} else {
		b.WriteString("ComfyUI reported an execution error")
	}
	msg := strings.TrimSpace(e.ExceptionMessage)
	if e.ExceptionType != "" || msg != "" {
		fmt.Fprintf(&b, ": %s", strings.TrimPrefix(e.ExceptionType+": "+msg, ": "))
	}
	if hint := e.hint(); hint != "" {
		b.WriteString(" (" + hint + ")")
	}
	return b.String()
}

func (e *ExecutionError) hint() string {
	t := strings.ToLower(e.ExceptionType + " " + e.ExceptionMessage)
	switch {
	case strings.Contains(t, "outofmemory") || strings.Contains(t, "out of memory"):
		return "the GPU ran out of memory: lower the resolution or batch size, or use a larger GPU"
	case strings.Contains(t, "modulenotfounderror") || strings.Contains(t, "no module named"):
		return "a Python package is missing: add it to the version's python_packages"
	case strings.Contains(t, "filenotfounderror") || strings.Contains(t, "no such file"):
		return "a file the node needs is missing: check the version's models and the job's input files"
	}
	return ""
}

// Bounds for what an ExecutionError keeps.
const (
	maxTracebackEntries = 12
	maxTracebackBytes   = 6 << 10
	maxInputValueBytes  = 256
	maxInputs           = 24
	maxExceptionMessage = 4 << 10
)

// execErrorData is the payload of execution_error (socket and history).
type execErrorData struct {
	PromptID         string                       `json:"prompt_id"`
	NodeID           string                       `json:"node_id"`
	NodeType         string                       `json:"node_type"`
	Executed         []string                     `json:"executed"`
	ExceptionMessage string                       `json:"exception_message"`
	ExceptionType    string                       `json:"exception_type"`
	Traceback        []string                     `json:"traceback"`
	CurrentInputs    map[string][]json.RawMessage `json:"current_inputs"`
}

// isBlocked reports ExecutionBlocker's pseudo-error, which does not end the
// prompt.
func (d *execErrorData) isBlocked() bool { return d.ExceptionType == "ExecutionBlocked" }

func (d *execErrorData) toError() *ExecutionError {
	e := &ExecutionError{
		PromptID: d.PromptID, NodeID: d.NodeID, NodeType: d.NodeType,
		ExceptionType:    d.ExceptionType,
		ExceptionMessage: truncate(strings.TrimSpace(d.ExceptionMessage), maxExceptionMessage),
		Traceback:        tracebackTail(d.Traceback),
		Executed:         d.Executed,
	}
	if len(d.CurrentInputs) > 0 {
		names := make([]string, 0, len(d.CurrentInputs))
		for k := range d.CurrentInputs {
			names = append(names, k)
		}
		sort.Strings(names)
		e.CurrentInputs = map[string]string{}
		for i, k := range names {
			if i == maxInputs {
				e.CurrentInputs["…"] = fmt.Sprintf("%d more inputs", len(names)-maxInputs)
				break
			}
			parts := make([]string, 0, len(d.CurrentInputs[k]))
			for _, v := range d.CurrentInputs[k] {
				parts = append(parts, rawToString(v))
			}
			e.CurrentInputs[k] = truncate(strings.Join(parts, ", "), maxInputValueBytes)
		}
	}
	return e
}

// tracebackTail keeps the innermost frames (the end of the list), within
// both an entry and a byte budget.
func tracebackTail(tb []string) []string {
	if len(tb) > maxTracebackEntries {
		tb = tb[len(tb)-maxTracebackEntries:]
	}
	total := 0
	start := len(tb)
	for start > 0 && total+len(tb[start-1]) <= maxTracebackBytes {
		start--
		total += len(tb[start])
	}
	if start == len(tb) && len(tb) > 0 {
		// A single huge frame: keep its end.
		last := tb[len(tb)-1]
		return []string{"…" + last[len(last)-maxTracebackBytes:]}
	}
	return append([]string(nil), tb[start:]...)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes truncated)", len(s)-cut)
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
