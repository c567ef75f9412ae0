package comfy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Workflow is an API-format ComfyUI graph: node id → node. It is what
// POST /prompt takes as "prompt".
type Workflow map[string]*Node

// Node is one node of an API-format graph. Numbers in Inputs are kept as
// json.Number so 64-bit seeds survive a round trip; keys other than
// class_type and inputs (such as _meta) are kept verbatim.
type Node struct {
	ClassType string
	Inputs    map[string]any
	// Extra holds the node's other keys, e.g. "_meta".
	Extra map[string]json.RawMessage
}

// ErrUIWorkflow is returned for a workflow saved in the UI format
// ({"nodes": [...], "links": [...]}) instead of the API format.
var ErrUIWorkflow = errors.New("the workflow is in ComfyUI's UI format; export it with \"Export (API)\" (enable dev mode options in older versions) and send that instead")

// ParseWorkflow decodes an API-format workflow and checks its shape: every
// node an object with a class_type string and an inputs object.
func ParseWorkflow(data []byte) (Workflow, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("workflow is not a JSON object: %w", err)
	}
	if isUIFormat(top) {
		return nil, ErrUIWorkflow
	}
	if len(top) == 0 {
		return nil, errors.New("workflow has no nodes")
	}
	wf := make(Workflow, len(top))
	for id, raw := range top {
		n := &Node{}
		if err := json.Unmarshal(raw, n); err != nil {
			return nil, fmt.Errorf("workflow node %q: %w", id, err)
		}
		if n.ClassType == "" {
			return nil, fmt.Errorf("workflow node %q has no class_type (is this an API-format workflow?)", id)
		}
		wf[id] = n
	}
	return wf, nil
}

func isUIFormat(top map[string]json.RawMessage) bool {
	nodes, hasNodes := top["nodes"]
	_, hasLinks := top["links"]
	return hasNodes && hasLinks && len(bytes.TrimSpace(nodes)) > 0 && bytes.TrimSpace(nodes)[0] == '['
}

// UnmarshalJSON decodes a node, keeping numbers exact and unknown keys.
func (n *Node) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return errors.New("node is not a JSON object")
	}
	*n = Node{}
	for k, v := range raw {
		switch k {
		case "class_type":
			if err := json.Unmarshal(v, &n.ClassType); err != nil {
				return errors.New("class_type is not a string")
			}
		case "inputs":
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.UseNumber()
			if err := dec.Decode(&n.Inputs); err != nil {
				return errors.New("inputs is not an object")
			}
		default:
			if n.Extra == nil {
				n.Extra = map[string]json.RawMessage{}
			}
			n.Extra[k] = v
		}
	}
	if n.Inputs == nil {
		n.Inputs = map[string]any{}
	}
	return nil
}

// MarshalJSON encodes class_type, inputs and the kept extra keys.
func (n *Node) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, 2+len(n.Extra))
	for k, v := range n.Extra {
		m[k] = v
	}
	m["class_type"] = n.ClassType
	inputs := n.Inputs
	if inputs == nil {
		inputs = map[string]any{}
	}
	m["inputs"] = inputs
	return json.Marshal(m)
}

// Clone copies the graph deeply enough to change input values: every node
// and its Inputs map are new; nested values are shared, as nothing here
// changes them in place.
func (w Workflow) Clone() Workflow {
	out := make(Workflow, len(w))
	for id, n := range w {
		c := &Node{ClassType: n.ClassType, Extra: n.Extra, Inputs: make(map[string]any, len(n.Inputs))}
		for k, v := range n.Inputs {
			c.Inputs[k] = v
		}
		out[id] = c
	}
	return out
}
