package comfy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ValidationError is ComfyUI refusing a workflow (HTTP 400 from /prompt):
// the top-level error and every per-node input error it listed.
type ValidationError struct {
	// Type is ComfyUI's error type: prompt_outputs_failed_validation,
	// invalid_prompt, missing_node_type, prompt_no_outputs, no_prompt, ...
	// Empty for v0.3.12's plain-string errors.
	Type    string      `json:"type"`
	Message string      `json:"message"`
	Details string      `json:"details,omitempty"`
	Nodes   []NodeError `json:"nodes,omitempty"`
}

// NodeError is one problem with one node's input.
type NodeError struct {
	NodeID    string `json:"node_id"`
	ClassType string `json:"class_type"`
	InputName string `json:"input_name,omitempty"`
	// Type is e.g. required_input_missing, value_not_in_list,
	// value_smaller_than_min, custom_validation_failed.
	Type    string `json:"type"`
	Message string `json:"message"`
	Details string `json:"details,omitempty"`
	// Received is the offending value, when ComfyUI reported one.
	Received string `json:"received,omitempty"`
	// Allowed holds some of the accepted values for value_not_in_list;
	// AllowedTotal is how many there are in all.
	Allowed      []string `json:"allowed,omitempty"`
	AllowedTotal int      `json:"allowed_total,omitempty"`
}

// maxAllowedShown is how many allowed values an error message lists.
const maxAllowedShown = 5

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("ComfyUI rejected the workflow: ")
	b.WriteString(strings.TrimSuffix(e.Message, "."))
	if e.Type == "invalid_prompt" || e.Type == "missing_node_type" {
		if e.Details != "" {
			fmt.Fprintf(&b, " (%s)", e.Details)
		}
		if strings.Contains(e.Message, "does not exist") {
			b.WriteString(" — add the custom node that provides it to the version spec, or fix the class_type")
		}
	}
	for i, n := range e.Nodes {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(n.String())
	}
	return b.String()
}

// String renders one node error on one line.
func (n NodeError) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s", n.NodeID)
	if n.ClassType != "" {
		fmt.Fprintf(&b, " (%s)", n.ClassType)
	}
	if n.InputName != "" {
		fmt.Fprintf(&b, " input %q", n.InputName)
	}
	fmt.Fprintf(&b, ": %s: %s", n.Type, n.Message)
	if n.Details != "" && n.Type != "value_not_in_list" && n.Details != n.InputName {
		fmt.Fprintf(&b, " (%s)", n.Details)
	}
	if n.Type == "value_not_in_list" {
		if n.Received != "" {
			fmt.Fprintf(&b, ": got %q", n.Received)
		}
		if len(n.Allowed) > 0 {
			shown := n.Allowed
			if len(shown) > maxAllowedShown {
				shown = shown[:maxAllowedShown]
			}
			fmt.Fprintf(&b, ", allowed: %s", strings.Join(shown, ", "))
			if n.AllowedTotal > len(shown) {
				fmt.Fprintf(&b, " and %d more", n.AllowedTotal-len(shown))
			}
		} else if n.AllowedTotal > 0 {
			fmt.Fprintf(&b, ", %d allowed values", n.AllowedTotal)
		}
	}
	return b.String()
}

// apiError is ComfyUI's {type, message, details, extra_info}.
type apiError struct {
	Type      string          `json:"type"`
	Message   string          `json:"message"`
	Details   string          `json:"details"`
	ExtraInfo json.RawMessage `json:"extra_info"`
}

type extraInfo struct {
	InputName     string          `json:"input_name"`
	InputConfig   json.RawMessage `json:"input_config"`
	ReceivedValue json.RawMessage `json:"received_value"`
}

type nodeErrorEntry struct {
	Errors    []apiError `json:"errors"`
	ClassType string     `json:"class_type"`
}

// decodeValidationError reads a 400 body from /prompt in either shape: the
// current {"error": {...}, "node_errors": {...}} and v0.3.12's
// {"error": "no prompt", "node_errors": []}.
func decodeValidationError(body []byte) (*ValidationError, error) {
	var raw struct {
		Error      json.RawMessage `json:"error"`
		NodeErrors json.RawMessage `json:"node_errors"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("decode /prompt error body: %w", err)
	}
	ve := &ValidationError{}
	var top apiError
	var msg string
	switch {
	case json.Unmarshal(raw.Error, &top) == nil && (top.Type != "" || top.Message != ""):
		ve.Type, ve.Message, ve.Details = top.Type, top.Message, top.Details
	case json.Unmarshal(raw.Error, &msg) == nil:
		ve.Message = msg
	default:
		ve.Message = "invalid prompt"
	}
	nodes, err := decodeNodeErrors(raw.NodeErrors)
	if err != nil {
		return nil, err
	}
	ve.Nodes = nodes
	return ve, nil
}

// decodeNodeErrors accepts the map form and v0.3.12's empty list.
func decodeNodeErrors(raw json.RawMessage) ([]NodeError, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, nil
	}
	var m map[string]nodeErrorEntry
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode node_errors: %w", err)
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sortNodeIDs(ids)
	var out []NodeError
	for _, id := range ids {
		entry := m[id]
		if len(entry.Errors) == 0 {
			out = append(out, NodeError{NodeID: id, ClassType: entry.ClassType, Type: "invalid", Message: "node failed validation"})
		}
		for _, e := range entry.Errors {
			out = append(out, nodeErrorFrom(id, entry.ClassType, e))
		}
	}
	return out, nil
}

var listLengthRE = regexp.MustCompile(`\(list of length (\d+)\)`)

func nodeErrorFrom(id, class string, e apiError) NodeError {
	ne := NodeError{NodeID: id, ClassType: class, Type: e.Type, Message: e.Message, Details: e.Details}
	var x extraInfo
	if json.Unmarshal(e.ExtraInfo, &x) == nil {
		ne.InputName = x.InputName
		ne.Received = rawToString(x.ReceivedValue)
	}
	if e.Type == "value_not_in_list" {
		ne.Allowed = comboOptions(x.InputConfig)
		ne.AllowedTotal = len(ne.Allowed)
		if m := listLengthRE.FindStringSubmatch(e.Details); m != nil {
			ne.AllowedTotal, _ = strconv.Atoi(m[1])
		}
	}
	return ne
}

// comboOptions reads the allowed values from an input_config, which is
// [[opt, ...], {...}] for classic nodes and ["COMBO", {"options": [...]}] for
// V3 nodes (or null when ComfyUI found the list too long to send).
func comboOptions(cfg json.RawMessage) []string {
	var parts []json.RawMessage
	if json.Unmarshal(cfg, &parts) != nil || len(parts) == 0 {
		return nil
	}
	var opts []any
	if json.Unmarshal(parts[0], &opts) != nil {
		var spec struct {
			Options []any `json:"options"`
		}
		if len(parts) < 2 || json.Unmarshal(parts[1], &spec) != nil {
			return nil
		}
		opts = spec.Options
	}
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		out = append(out, fmt.Sprint(o))
	}
	return out
}

func rawToString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// sortNodeIDs orders ids numerically where they are numbers ("2" < "10").
func sortNodeIDs(ids []string) {
	sort.Slice(ids, func(i, j int) bool { return nodeIDLess(ids[i], ids[j]) })
}

func nodeIDLess(a, b string) bool {
	x, ea := strconv.Atoi(a)
	y, eb := strconv.Atoi(b)
	switch {
	case ea == nil && eb == nil:
		return x < y
	case (ea == nil) != (eb == nil):
		return ea == nil
	}
	return a < b
}
