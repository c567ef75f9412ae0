package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// SetCommits rewrites the "commit" values of a spec file's entries in
// place, keeping every other byte (the author's layout, key order and
// comments-free formatting) as it is. commits maps an entry's JSON path
// ("comfy", "custom_nodes[2]") to its new commit; only entries that
// already have a "commit" string are changed. It returns the new file and
// the paths it changed.
func SetCommits(data []byte, commits map[string]string) ([]byte, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		path  string
		array bool
		index int
		key   string // the object's key whose value comes next
	}
	var stack []frame
	type span struct {
		start, end int64
		path, sha  string
	}
	var spans []span
	// expectKey tracks whether the next string in an object is a key.
	expectKey := false
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) && len(stack) == 0 {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("rewrite commits: %w", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		// childPath is where a value read now sits.
		childPath := func() string {
			switch {
			case top == nil:
				return ""
			case top.array:
				return fmt.Sprintf("%s[%d]", top.path, top.index)
			case top.path == "":
				return top.key
			}
			return top.path + "." + top.key
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, frame{path: childPath(), array: t == '['})
				expectKey = t == '{'
				continue
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && !top.array && expectKey {
				top.key = t
				expectKey = false
				continue
			}
			if top != nil && !top.array && top.key == "commit" {
				if sha, ok := commits[top.path]; ok && sha != t {
					end := dec.InputOffset()
					start := bytes.LastIndexByte(data[before:end-1], '"') + int(before)
					var got string
					if json.Unmarshal(data[start:end], &got) != nil || got != t {
						return nil, nil, fmt.Errorf("rewrite commits: %s.commit is not a plain string", top.path)
					}
					spans = append(spans, span{int64(start), end, top.path, sha})
				}
			}
		}
		// A value was read: the next token of an object is a key again,
		// and an array moves to its next element.
		if len(stack) > 0 {
			if f := &stack[len(stack)-1]; f.array {
				f.index++
			} else {
				expectKey = true
			}
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start > spans[j].start })
	out := append([]byte(nil), data...)
	var changed []string
	for _, s := range spans {
		out = append(out[:s.start], append([]byte(strconv.Quote(s.sha)), out[s.end:]...)...)
		changed = append(changed, s.path)
	}
	sort.Strings(changed)
	return out, changed, nil
}
