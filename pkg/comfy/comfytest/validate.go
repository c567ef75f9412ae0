package comfytest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// apiError is ComfyUI's error object: {type, message, details, extra_info}.
type apiError map[string]any

func newAPIError(typ, msg, details string, extra map[string]any) apiError {
	if extra == nil {
		extra = map[string]any{}
	}
	return apiError{"type": typ, "message": msg, "details": details, "extra_info": extra}
}

// promptNode is one decoded node of an API-format prompt.
type promptNode struct {
	id     string
	class  *classSpec
	inputs map[string]any
}

// validation is the outcome of validate_prompt: either a top-level error
// (400) or the outputs to run, plus per-node errors (which a 200 may carry).
type validation struct {
	err        apiError
	outputs    []string
	nodeErrors map[string]any
	nodes      map[string]*promptNode
}

type nodeResult struct {
	valid   bool
	reasons []apiError
}

// validatePrompt follows ComfyUI's execution.validate_prompt: class checks
// first (first failure wins), then each output node's inputs recursively.
func (s *Server) validatePrompt(prompt map[string]any) validation {
	ids := sortedIDs(prompt)
	nodes := map[string]*promptNode{}
	var outputs []string
	for _, id := range ids {
		raw, _ := prompt[id].(map[string]any)
		ct, ok := raw["class_type"].(string)
		if raw == nil || !ok {
			return validation{err: newAPIError("invalid_prompt", "Cannot execute because a node is missing the class_type property.", fmt.Sprintf("Node ID '#%s'", id), nil)}
		}
		cls := classes[ct]
		if cls == nil {
			return validation{err: newAPIError("invalid_prompt", fmt.Sprintf("Cannot execute because node %s does not exist.", ct), fmt.Sprintf("Node ID '#%s'", id), nil)}
		}
		in, _ := raw["inputs"].(map[string]any)
		if in == nil {
			in = map[string]any{}
		}
		nodes[id] = &promptNode{id: id, class: cls, inputs: in}
		if cls.output {
			outputs = append(outputs, id)
		}
	}
	if len(outputs) == 0 {
		return validation{err: newAPIError("prompt_no_outputs", "Prompt has no outputs", "", nil)}
	}

	validated := map[string]nodeResult{}
	nodeErrors := map[string]any{}
	var good []string
	var ownErrors []string
	for _, o := range outputs {
		res, exc := s.validateNode(nodes, o, validated)
		if exc != nil {
			res = nodeResult{reasons: []apiError{newAPIError("exception_during_validation", "Exception when validating node", exc.msg,
				map[string]any{"exception_type": exc.typ, "traceback": []string{}})}}
			validated[o] = res
		}
		if res.valid {
			good = append(good, o)
			continue
		}
		for _, r := range res.reasons {
			ownErrors = append(ownErrors, fmt.Sprintf("%v: %v", r["message"], r["details"]))
		}
		for _, id := range sortedKeys(validated) {
			r := validated[id]
			if r.valid || len(r.reasons) == 0 {
				continue
			}
			ne, ok := nodeErrors[id].(map[string]any)
			if !ok {
				errs := make([]any, len(r.reasons))
				for i, e := range r.reasons {
					errs[i] = map[string]any(e)
				}
				ne = map[string]any{"errors": errs, "dependent_outputs": []any{}, "class_type": nodes[id].class.name}
				nodeErrors[id] = ne
			}
			ne["dependent_outputs"] = append(ne["dependent_outputs"].([]any), o)
		}
	}
	if len(good) == 0 {
		return validation{
			err:        newAPIError("prompt_outputs_failed_validation", "Prompt outputs failed validation", strings.Join(ownErrors, "\n"), nil),
			nodeErrors: nodeErrors,
		}
	}
	return validation{outputs: good, nodeErrors: nodeErrors, nodes: nodes}
}

// pyException stands for a Python exception escaping validate_inputs, such as
// the KeyError of a link to a node that does not exist.
type pyException struct{ typ, msg string }

func (s *Server) validateNode(nodes map[string]*promptNode, id string, validated map[string]nodeResult) (nodeResult, *pyException) {
	if r, ok := validated[id]; ok {
		return r, nil
	}
	n := nodes[id]
	var errs []apiError
	valid := true
	for _, spec := range n.class.inputs {
		v, present := n.inputs[spec.name]
		if !present {
			if spec.required {
				errs = append(errs, newAPIError("required_input_missing", "Required input is missing", spec.name, map[string]any{"input_name": spec.name}))
			}
			continue
		}
		info := []any{string(spec.kind), spec.config}
		if link, ok := v.([]any); ok {
			if len(link) != 2 {
				errs = append(errs, newAPIError("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", spec.name,
					map[string]any{"input_name": spec.name, "input_config": info, "received_value": v}))
				continue
			}
			src, _ := link[0].(string)
			up := nodes[src]
			if up == nil {
				return nodeResult{}, &pyException{typ: "KeyError", msg: fmt.Sprintf("'%v'", link[0])}
			}
			slot := toInt(link[1])
			if slot < 0 || slot >= len(up.class.outputs) {
				return nodeResult{}, &pyException{typ: "IndexError", msg: "tuple index out of range"}
			}
			got := up.class.outputs[slot]
			if spec.kind != kindAny && got != spec.kind {
				errs = append(errs, newAPIError("return_type_mismatch", "Return type mismatch between linked nodes",
					fmt.Sprintf("%s, received_type(%s) mismatch input_type(%s)", spec.name, got, spec.kind),
					map[string]any{"input_name": spec.name, "input_config": info, "received_type": string(got), "linked_node": link}))
				continue
			}
			r, exc := s.validateNode(nodes, src, validated)
			if exc != nil {
				validated[src] = nodeResult{reasons: []apiError{newAPIError("exception_during_inner_validation", "Exception when validating inner node", exc.msg,
					map[string]any{"input_name": spec.name, "input_config": info, "exception_message": exc.msg, "exception_type": exc.typ,
						"traceback": []string{}, "linked_node": link})}}
				// ComfyUI files the failure under the linked node (the
				// one whose validation raised) and moves on.
				valid = false
				continue
			}
			if !r.valid {
				valid = false
			}
			continue
		}
		if e := checkLiteral(s, n, spec, v, info); e != nil {
			errs = append(errs, e)
		}
	}
	if n.class.validate != nil {
		if msg := n.class.validate(s, n.inputs); msg != "" {
			last := n.class.inputs[len(n.class.inputs)-1].name
			errs = append(errs, newAPIError("custom_validation_failed", "Custom validation failed for node", last+" - "+msg, map[string]any{"input_name": last}))
		}
	}
	r := nodeResult{valid: valid && len(errs) == 0, reasons: errs}
	validated[id] = r
	return r, nil
}

func checkLiteral(s *Server, n *promptNode, spec inputSpec, v any, info []any) apiError {
	extra := func() map[string]any {
		return map[string]any{"input_name": spec.name, "input_config": info, "received_value": v}
	}
	switch spec.kind {
	case kindInt, kindFloat:
		f, err := toNumber(v)
		if err != nil {
			x := extra()
			x["exception_message"] = err.Error()
			return newAPIError("invalid_input_type", fmt.Sprintf("Failed to convert an input value to a %s value", spec.kind),
				fmt.Sprintf("%s, %v, %v", spec.name, v, err), x)
		}
		if spec.kind == kindInt {
			f = float64(int64(f))
		}
		n.inputs[spec.name] = f
		if n.class.validate != nil {
			return nil
		}
		if spec.hasMin && f < spec.min {
			return newAPIError("value_smaller_than_min", fmt.Sprintf("Value %s smaller than min of %s", pyNum(f), pyNum(spec.min)), spec.name, extra())
		}
		if spec.max > 0 && f > spec.max {
			return newAPIError("value_bigger_than_max", fmt.Sprintf("Value %s bigger than max of %s", pyNum(f), pyNum(spec.max)), spec.name, extra())
		}
	case kindString:
		if _, ok := v.(string); !ok {
			n.inputs[spec.name] = fmt.Sprint(v)
		}
	case kindCombo:
		if n.class.validate != nil {
			return nil
		}
		opts := spec.options(s)
		str, _ := v.(string)
		for _, o := range opts {
			if o == str {
				return nil
			}
		}
		listInfo := pyList(opts)
		var cfg any = []any{opts, map[string]any{}}
		if len(opts) > 20 {
			listInfo = fmt.Sprintf("(list of length %d)", len(opts))
			cfg = nil
		}
		return newAPIError("value_not_in_list", "Value not in list", fmt.Sprintf("%s: '%v' not in %s", spec.name, v, listInfo),
			map[string]any{"input_name": spec.name, "input_config": cfg, "received_value": v})
	}
	return nil
}

func toNumber(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("invalid literal for int() with base 10: '%s'", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("int() argument must be a string, a bytes-like object or a real number, not '%T'", v)
}

// pyNum prints a number the way Python prints an int-valued float converted
// to int (ComfyUI converts INT inputs before comparing).
func pyNum(f float64) string {
	if f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func pyList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = "'" + x + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// sortedIDs orders node ids numerically when they are numbers, as a UI
// export lists them, so the fake's behaviour does not depend on map order.
func sortedIDs(m map[string]any) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sortNodeIDs(ids)
	return ids
}

func sortedKeys[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sortNodeIDs(ids)
	return ids
}

func sortNodeIDs(ids []string) {
	sort.Slice(ids, func(i, j int) bool {
		a, ea := strconv.Atoi(ids[i])
		b, eb := strconv.Atoi(ids[j])
		if ea == nil && eb == nil {
			return a < b
		}
		if (ea == nil) != (eb == nil) {
			return ea == nil
		}
		return ids[i] < ids[j]
	})
}
