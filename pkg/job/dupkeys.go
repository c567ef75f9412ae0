package job

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// firstDuplicateKey returns the path ("workflow.3.inputs.seed",
// "images[0].name") of the first key that appears twice in one object of
// data, or "" when every key is unique. encoding/json silently keeps the
// last of duplicate keys, so a job whose second "seed" overrides the first
// would run with a value its author may not have meant; specs refuse them
// too. data must be valid JSON. It scans the bytes rather than decoding
// tokens: a job input can hold megabytes of base64, which this skips at
// memory speed.
func firstDuplicateKey(data []byte) string {
	type frame struct {
		obj       bool
		keys      map[string]struct{}
		path      string
		index     int    // array element index
		key       string // object key of the value being read
		expectKey bool
	}
	var stack []*frame
	childPath := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if top.obj {
			if top.path == "" {
				return top.key
			}
			return top.path + "." + top.key
		}
		return top.path + "[" + strconv.Itoa(top.index) + "]"
	}
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			stack = append(stack, &frame{obj: c == '{', path: childPath(), expectKey: c == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := stack[len(stack)-1]; top.obj {
				top.expectKey = true
			} else {
				top.index++
			}
		case '"':
			end := stringEnd(data, i)
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].expectKey {
				top := stack[n-1]
				key := string(data[i+1 : end])
				if bytes.IndexByte(data[i+1:end], '\\') >= 0 {
					json.Unmarshal(data[i:end+1], &key)
				}
				if top.keys == nil {
					top.keys = map[string]struct{}{}
				}
				if _, dup := top.keys[key]; dup {
					top.key = key
					return childPath()
				}
				top.keys[key] = struct{}{}
				top.key, top.expectKey = key, false
			}
			i = end
		}
	}
	return ""
}

// stringEnd is the index of the quote closing the string that opens at
// data[start]: the next quote not escaped by an odd run of backslashes.
func stringEnd(data []byte, start int) int {
	for i := start + 1; i < len(data); {
		j := bytes.IndexByte(data[i:], '"')
		if j < 0 {
			return len(data) - 1
		}
		i += j
		n := 0
		for k := i - 1; k > start && data[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return i
		}
		i++
	}
	return len(data) - 1
}
