package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Clone returns the spec file data with its id set to newID, keeping the
// author's layout of keys and legacy forms (only version_id changes, and a
// legacy "id" key becomes "version_id"). data must be a valid spec: it is
// validated first, so a clone never copies a broken spec.
func Clone(data []byte, file, newID string) ([]byte, error) {
	if !ValidID(newID) {
		return nil, &Error{Msg: fmt.Sprintf("invalid version id %q: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit", newID)}
	}
	if _, err := Decode(data, file); err != nil {
		return nil, err
	}
	v, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	top := v.(*object)
	keys := top.keys[:0:0]
	for _, k := range top.keys {
		if k == "id" {
			k = "version_id"
			delete(top.vals, "id")
		}
		if !contains(keys, k) {
			keys = append(keys, k)
		}
	}
	top.keys = keys
	top.vals["version_id"] = newID
	var buf bytes.Buffer
	writeTree(&buf, top, "")
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// writeTree renders a value tree as indented JSON in its original order.
func writeTree(buf *bytes.Buffer, v any, indent string) {
	switch t := v.(type) {
	case *object:
		if len(t.keys) == 0 {
			buf.WriteString("{}")
			return
		}
		buf.WriteString("{\n")
		for i, k := range t.keys {
			buf.WriteString(indent + "  ")
			writeString(buf, k)
			buf.WriteString(": ")
			writeTree(buf, t.vals[k], indent+"  ")
			if i < len(t.keys)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "}")
	case []any:
		if len(t) == 0 {
			buf.WriteString("[]")
			return
		}
		buf.WriteString("[\n")
		for i, e := range t {
			buf.WriteString(indent + "  ")
			writeTree(buf, e, indent+"  ")
			if i < len(t)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "]")
	case string:
		writeString(buf, t)
	case json.Number:
		buf.WriteString(string(t))
	case bool:
		fmt.Fprint(buf, t)
	case nil:
		buf.WriteString("null")
	}
}

func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	buf.Truncate(buf.Len() - 1) // Encode adds a newline
}
