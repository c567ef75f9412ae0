package comfy

import (
	"fmt"
	"slices"
	"strings"
)

// Rewrite records one input value replaced by RewriteInputs.
type Rewrite struct {
	NodeID, Input, From, To string
}

// annotations ComfyUI accepts after a file name to pick its folder.
var annotations = []string{"", " [input]"}

// RewriteInputs returns a copy of wf in which every string input equal to an
// original file name in names is replaced by the name it was uploaded as.
// That covers LoadImage/LoadImageMask "image", VHS_LoadVideo "video",
// LoadAudio "audio" and any custom loader alike; "name [input]" annotated
// values are rewritten too. Links and non-string values are never touched.
// wf itself is not modified.
func RewriteInputs(wf Workflow, names map[string]string) (Workflow, []Rewrite) {
	out := wf.Clone()
	if len(names) == 0 {
		return out, nil
	}
	var done []Rewrite
	ids := make([]string, 0, len(out))
	for id := range out {
		ids = append(ids, id)
	}
	sortNodeIDs(ids)
	for _, id := range ids {
		n := out[id]
		keys := make([]string, 0, len(n.Inputs))
		for k := range n.Inputs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			s, ok := n.Inputs[k].(string)
			if !ok {
				continue
			}
			for _, a := range annotations {
				orig, found := strings.CutSuffix(s, a)
				if !found {
					continue
				}
				if to, ok := names[orig]; ok && to != orig {
					n.Inputs[k] = to + a
					done = append(done, Rewrite{NodeID: id, Input: k, From: s, To: to + a})
					break
				}
			}
		}
	}
	return out, done
}

// maxInputName bounds upload names (file systems allow 255 bytes).
const maxInputName = 200

// CheckInputName refuses a file name that could escape ComfyUI's input
// folder or is unusable as a file name.
func CheckInputName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("input file name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("input file name %q is not a file name", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("input file name %q must not contain a path separator or NUL", name)
	case len(name) > maxInputName:
		return fmt.Errorf("input file name %q is longer than %d bytes", name[:40]+"…", maxInputName)
	}
	return nil
}

// UniqueInputName is the name an input file is uploaded under for one job:
// prefix_name, so concurrent or successive jobs never overwrite each
// other's inputs and ComfyUI's LoadImage cache sees a new file per job.
func UniqueInputName(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "_" + name
}
