package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The decoder works on a small ordered value tree rather than on Go structs:
// encoding/json cannot report unknown keys with their JSON path, silently
// keeps the last of duplicate keys, and loses key order, which we need to
// report the first problem in document order.

// object is a JSON object with its keys in document order.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// parseJSON decodes data into the value tree: *object, []any, string,
// json.Number, bool or nil. Duplicate keys and trailing data are errors.
func parseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseJSONValue(dec, "")
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &Error{Msg: "unexpected data after the top-level JSON value"}
	}
	return v, nil
}

func parseJSONValue(dec *json.Decoder, path string) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonSyntaxError(err, dec)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, jsonSyntaxError(err, dec)
				}
				k := kt.(string)
				if _, dup := o.vals[k]; dup {
					return nil, &Error{Path: join(path, k), Msg: "duplicate key"}
				}
				v, err := parseJSONValue(dec, join(path, k))
				if err != nil {
					return nil, err
				}
				o.keys = append(o.keys, k)
				o.vals[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonSyntaxError(err, dec)
			}
			return o, nil
		case '[':
			arr := []any{}
			for i := 0; dec.More(); i++ {
				v, err := parseJSONValue(dec, index(path, i))
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonSyntaxError(err, dec)
			}
			return arr, nil
		}
		return nil, &Error{Path: path, Msg: fmt.Sprintf("unexpected %q", t)}
	default:
		return t, nil
	}
}

func jsonSyntaxError(err error, dec *json.Decoder) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &Error{Msg: fmt.Sprintf("invalid JSON at byte %d: %v", dec.InputOffset(), err)}
}

// parseYAML decodes YAML (a superset of JSON) into the same value tree, so
// model and node lists written in either format go through one validator.
func parseYAML(data []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if doc.Kind == 0 {
		return nil, &Error{Msg: "the file is empty"}
	}
	return fromYAML(&doc, "")
}

func fromYAML(n *yaml.Node, path string) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return fromYAML(n.Content[0], path)
	case yaml.AliasNode:
		return fromYAML(n.Alias, path)
	case yaml.MappingNode:
		o := &object{vals: map[string]any{}}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn := n.Content[i]
			if kn.Kind != yaml.ScalarNode {
				return nil, &Error{Path: path, Msg: fmt.Sprintf("line %d: keys must be strings", kn.Line)}
			}
			k := kn.Value
			if _, dup := o.vals[k]; dup {
				return nil, &Error{Path: join(path, k), Msg: "duplicate key"}
			}
			v, err := fromYAML(n.Content[i+1], join(path, k))
			if err != nil {
				return nil, err
			}
			o.keys = append(o.keys, k)
			o.vals[k] = v
		}
		return o, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, err := fromYAML(c, index(path, i))
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, &Error{Path: path, Msg: err.Error()}
			}
			return b, nil
		case "!!int", "!!float":
			if _, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err == nil {
				return json.Number(strings.ReplaceAll(n.Value, "_", "")), nil
			}
			return n.Value, nil
		default:
			return n.Value, nil
		}
	}
	return nil, &Error{Path: path, Msg: fmt.Sprintf("line %d: unsupported YAML node", n.Line)}
}

// join and index build JSON paths such as custom_nodes[2].commit.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// typeName describes a tree value for "want X, got Y" messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case *object:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
