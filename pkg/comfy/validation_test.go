package comfy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestDecodeValidationError(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		typ     string
		message string
		nodes   []nodeKey
		inMsg   []string
	}{
		{
			name:    "v0.3.12 plain string",
			body:    `{"error": "no prompt", "node_errors": []}`,
			message: "no prompt",
			inMsg:   []string{"ComfyUI rejected the workflow: no prompt"},
		},
		{
			name:    "current no_prompt",
			body:    `{"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}, "node_errors": {}}`,
			typ:     "no_prompt",
			message: "No prompt provided",
		},
		{
			name:    "v0.3.12 invalid_prompt with list node_errors",
			body:    `{"error": {"type": "invalid_prompt", "message": "Cannot execute because node Foo does not exist.", "details": "Node ID '#1'", "extra_info": {}}, "node_errors": []}`,
			typ:     "invalid_prompt",
			message: "Cannot execute because node Foo does not exist.",
			inMsg:   []string{"(Node ID '#1')", "add the custom node"},
		},
		{
			name: "newest missing_node_type",
			body: `{"error": {"type": "missing_node_type", "message": "Node 'Foo' not found. The custom node may not be installed.", "details": "Node ID '#1'", "extra_info": {"node_id": "1", "class_type": "Foo", "node_title": "Foo"}}, "node_errors": {}}`,
			typ:  "missing_node_type",
		},
		{
			name: "per-node errors sorted numerically",
			body: `{"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
			 "node_errors": {
			  "10": {"errors": [{"type": "value_bigger_than_max", "message": "Value 99999 bigger than max of 16384", "details": "width", "extra_info": {"input_name": "width", "received_value": 99999}}], "dependent_outputs": ["11"], "class_type": "EmptyLatentImage"},
			  "4": {"errors": [
			    {"type": "value_not_in_list", "message": "Value not in list", "details": "ckpt_name: 'x.ckpt' not in ['a.ckpt', 'b.ckpt', 'c.ckpt', 'd.ckpt', 'e.ckpt', 'f.ckpt', 'g.ckpt']", "extra_info": {"input_name": "ckpt_name", "input_config": [["a.ckpt", "b.ckpt", "c.ckpt", "d.ckpt", "e.ckpt", "f.ckpt", "g.ckpt"], {"tooltip": "model"}], "received_value": "x.ckpt"}},
			    {"type": "required_input_missing", "message": "Required input is missing", "details": "vae", "extra_info": {"input_name": "vae"}}
			  ], "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple"}}}`,
			typ: "prompt_outputs_failed_validation",
			nodes: []nodeKey{
				{"4", "CheckpointLoaderSimple", "ckpt_name", "value_not_in_list"},
				{"4", "CheckpointLoaderSimple", "vae", "required_input_missing"},
				{"10", "EmptyLatentImage", "width", "value_bigger_than_max"},
			},
			inMsg: []string{
				`node 4 (CheckpointLoaderSimple) input "ckpt_name": value_not_in_list: Value not in list: got "x.ckpt", allowed: a.ckpt, b.ckpt, c.ckpt, d.ckpt, e.ckpt and 2 more`,
				`node 10 (EmptyLatentImage) input "width": value_bigger_than_max: Value 99999 bigger than max of 16384`,
			},
		},
		{
			name: "long combo list not sent",
			body: `{"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
			 "node_errors": {"5": {"errors": [{"type": "value_not_in_list", "message": "Value not in list", "details": "lora_name: 'x' not in (list of length 245)", "extra_info": {"input_name": "lora_name", "input_config": null, "received_value": "x"}}], "class_type": "LoraLoader"}}}`,
			typ:   "prompt_outputs_failed_validation",
			nodes: []nodeKey{{"5", "LoraLoader", "lora_name", "value_not_in_list"}},
			inMsg: []string{`got "x", 245 allowed values`},
		},
		{
			name: "V3 combo options",
			body: `{"error": {"type": "prompt_outputs_failed_validation", "message": "m", "details": "", "extra_info": {}},
			 "node_errors": {"5": {"errors": [{"type": "value_not_in_list", "message": "Value not in list", "details": "", "extra_info": {"input_name": "mode", "input_config": ["COMBO", {"options": ["fast", "slow"]}], "received_value": "medium"}}], "class_type": "V3Node"}}}`,
			typ:   "m",
			nodes: []nodeKey{{"5", "V3Node", "mode", "value_not_in_list"}},
			inMsg: []string{"allowed: fast, slow"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ve, err := decodeValidationError([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.typ != "" && ve.Type != tt.typ && ve.Message != tt.typ {
				t.Errorf("type = %q", ve.Type)
			}
			if tt.message != "" && ve.Message != tt.message {
				t.Errorf("message = %q", ve.Message)
			}
			var got []nodeKey
			for _, n := range ve.Nodes {
				got = append(got, nodeKey{n.NodeID, n.ClassType, n.InputName, n.Type})
			}
			if !slices.Equal(got, tt.nodes) {
				t.Errorf("nodes = %+v\nwant %+v", got, tt.nodes)
			}
			for _, want := range tt.inMsg {
				if !strings.Contains(ve.Error(), want) {
					t.Errorf("message lacks %q:\n%s", want, ve.Error())
				}
			}
		})
	}
	if _, err := decodeValidationError([]byte("500 Internal Server Error")); err == nil {
		t.Error("a non-JSON body decoded")
	}
}

func TestExecutionErrorIsBounded(t *testing.T) {
	var tb []string
	for i := range 50 {
		tb = append(tb, fmt.Sprintf("  File \"x.py\", line %d, in f%d\n    %s\n", i, i, strings.Repeat("y", 400)))
	}
	inputs := map[string][]json.RawMessage{}
	for i := range 40 {
		v, _ := json.Marshal(strings.Repeat("tensor([0.5]) ", 10000))
		inputs[fmt.Sprintf("in%02d", i)] = []json.RawMessage{v}
	}
	d := execErrorData{NodeID: "5", NodeType: "KSampler", ExceptionType: "torch.OutOfMemoryError",
		ExceptionMessage: "CUDA out of memory.\n" + strings.Repeat("z", 10000), Traceback: tb, CurrentInputs: inputs}
	e := d.toError()
	size := 0
	for _, f := range e.Traceback {
		size += len(f)
	}
	if size > maxTracebackBytes || len(e.Traceback) > maxTracebackEntries || e.Traceback[len(e.Traceback)-1] != tb[49] {
		t.Errorf("traceback: %d entries, %d bytes, last kept = %v", len(e.Traceback), size, e.Traceback[len(e.Traceback)-1] == tb[49])
	}
	if len(e.CurrentInputs) != maxInputs+1 {
		t.Errorf("%d inputs kept", len(e.CurrentInputs))
	}
	for k, v := range e.CurrentInputs {
		if len(v) > maxInputValueBytes+40 {
			t.Errorf("input %s kept %d bytes", k, len(v))
		}
	}
	if len(e.ExceptionMessage) > maxExceptionMessage+40 {
		t.Errorf("exception message kept %d bytes", len(e.ExceptionMessage))
	}
	if !strings.Contains(e.Error(), "ran out of memory") {
		t.Errorf("no OOM hint: %s", e.Error())
	}
	one := tracebackTail([]string{strings.Repeat("q", 3*maxTracebackBytes)})
	if len(one) != 1 || len(one[0]) > maxTracebackBytes+len("…") {
		t.Errorf("huge single frame kept %d bytes", len(one[0]))
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	s := strings.Repeat("é", 100) // 2 bytes each
	got := truncate(s, 51)
	if !strings.HasPrefix(got, strings.Repeat("é", 25)+"…") {
		t.Errorf("truncate cut a rune: %q", got)
	}
	if truncate("short", 10) != "short" {
		t.Error("short string changed")
	}
}
