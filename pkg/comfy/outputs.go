package comfy

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

type fileRef struct {
	Filename  string `json:"filename"`
	Subfolder string `json:"subfolder"`
	Type      string `json:"type"`
}

// collectOutputs lists every file in a history's outputs: any object with a
// filename, under any key of any node's UI dict (images, gifs, videos,
// audio, 3D files, ...), either in a list or on its own; and every string
// there, a text a node showed instead of writing a file. Other values
// (animated flags, numbers) are skipped. Order: node id, key, position. A
// file listed twice is listed once.
//
// A file that a cached node lists and a node that ran also lists is stale
// for the cached node: ComfyUI numbers file names from the highest one
// present, so once the worker has deleted a job's outputs a node that runs
// can write the very name a cached node still reports. Those cached
// listings come back in stale; the node that ran keeps the file.
func collectOutputs(outputs map[string]json.RawMessage, cached map[string]bool, skipTemp bool) (out, stale []Output, texts []TextOutput) {
	seen := map[fileRef]int{} // index in out
	walkUI(outputs, func(id, k string, raw json.RawMessage) {
		var text string
		if json.Unmarshal(raw, &text) == nil {
			texts = append(texts, TextOutput{NodeID: id, Kind: k, Text: text})
			return
		}
		var f fileRef
		if json.Unmarshal(raw, &f) != nil || f.Filename == "" {
			return
		}
		if f.Type == "" {
			f.Type = "output" // /view's default
		}
		if skipTemp && f.Type == "temp" {
			return
		}
		o := Output{NodeID: id, Kind: k, Filename: f.Filename, Subfolder: f.Subfolder, Type: f.Type, Cached: cached[id]}
		i, dup := seen[f]
		switch {
		case !dup:
			seen[f] = len(out)
			out = append(out, o)
		case out[i].Cached && !o.Cached:
			stale = append(stale, out[i])
			out[i] = o
		case o.Cached && !out[i].Cached:
			stale = append(stale, o)
		}
	})
	return out, stale, texts
}

// walkUI calls fn for each value in the nodes' UI dicts, in node id, key
// and list order; a value that is not a list is a list of one.
func walkUI(outputs map[string]json.RawMessage, fn func(nodeID, key string, item json.RawMessage)) {
	ids := make([]string, 0, len(outputs))
	for id := range outputs {
		ids = append(ids, id)
	}
	sortNodeIDs(ids)
	for _, id := range ids {
		var ui map[string]json.RawMessage
		if json.Unmarshal(outputs[id], &ui) != nil {
			continue
		}
		keys := make([]string, 0, len(ui))
		for k := range ui {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			var items []json.RawMessage
			if json.Unmarshal(ui[k], &items) != nil {
				items = []json.RawMessage{ui[k]}
			}
			for _, item := range items {
				fn(id, k, item)
			}
		}
	}
}

// missingOutputError lists outputs /view answered 404 for.
type missingOutputError struct {
	Outputs []Output
}

func (e *missingOutputError) Error() string {
	names := make([]string, len(e.Outputs))
	for i, o := range e.Outputs {
		names[i] = path(o.Subfolder, o.Filename) + " (" + o.Type + ")"
	}
	return fmt.Sprintf("ComfyUI no longer has output files %s", strings.Join(names, ", "))
}

func (e *missingOutputError) allCached() bool {
	for _, o := range e.Outputs {
		if !o.Cached {
			return false
		}
	}
	return len(e.Outputs) > 0
}

func (e *missingOutputError) nodes() []string {
	var ids []string
	for _, o := range e.Outputs {
		if !slices.Contains(ids, o.NodeID) {
			ids = append(ids, o.NodeID)
		}
	}
	return ids
}

func path(sub, name string) string {
	if sub == "" {
		return name
	}
	return sub + "/" + name
}

// localPath is where an output lands under dir: subfolder/filename, with
// names ComfyUI (or a custom node) supplied checked so nothing escapes dir,
// and a numeric suffix when two outputs would share a path.
func localPath(dir string, o Output, used map[string]bool) (string, error) {
	if o.Filename == "." || o.Filename == ".." || strings.ContainsAny(o.Filename, "/\\\x00") {
		return "", fmt.Errorf("output file name %q from node %s is not a plain file name", o.Filename, o.NodeID)
	}
	sub := filepath.Clean(filepath.FromSlash("/" + o.Subfolder))[1:]
	if strings.Contains(o.Subfolder, "..") || strings.ContainsRune(o.Subfolder, 0) {
		return "", fmt.Errorf("output subfolder %q from node %s is not allowed", o.Subfolder, o.NodeID)
	}
	p := filepath.Join(dir, sub, o.Filename)
	ext := filepath.Ext(p)
	for i := 1; used[p]; i++ {
		p = filepath.Join(dir, sub, strings.TrimSuffix(o.Filename, ext)+"_"+strconv.Itoa(i)+ext)
	}
	used[p] = true
	return p, nil
}

// TextOutput is a text a node showed in ComfyUI's UI instead of writing a
// file (PreviewAny, ShowText and the like): workflows whose product is a
// caption, a prompt or a number return it this way.
type TextOutput struct {
	NodeID string
	Kind   string // the UI key, usually "text"
	Text   string
}
