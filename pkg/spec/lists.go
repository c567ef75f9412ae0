package spec

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Lists are the inputs of `worker create`: node lists (the original's
// nodes/*.json), model lists (its models/*.yml), inline JSON, and
// ComfyUI-Manager snapshots. Each parser returns entries validated with the
// same rules as a spec, plus warnings.

// parseAny reads JSON or YAML: JSON when the text starts like JSON (better
// error positions), YAML otherwise.
func parseAny(data []byte) (any, error) {
	t := bytes.TrimSpace(data)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		if v, err := parseJSON(t); err == nil {
			return v, nil
		}
	}
	return parseYAML(data)
}

// ParseNodes reads a node list: a list of node objects, one node object, or
// an object with a "custom_nodes" list.
func ParseNodes(data []byte, file string) ([]Node, []Warning, error) {
	d := &decoder{file: file}
	nodes, err := d.nodeList(data)
	if err != nil {
		if se, ok := err.(*Error); ok && se.File == "" {
			se.File = file
		}
		return nil, nil, err
	}
	return nodes, d.warns, nil
}

func (d *decoder) nodeList(data []byte) ([]Node, error) {
	v, err := parseAny(data)
	if err != nil {
		return nil, err
	}
	items, base, err := unwrapList(v, "custom_nodes", "nodes")
	if err != nil {
		return nil, err
	}
	var nodes []Node
	for i, e := range items {
		n, err := d.node(e, index(base, i))
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// ParseModels reads a model list: an object with a "models" list (the
// original's YAML files, which its own create could not read), a bare list,
// or one model object.
func ParseModels(data []byte, file string) ([]Model, []Warning, error) {
	d := &decoder{file: file}
	models, err := d.modelList(data)
	if err != nil {
		if se, ok := err.(*Error); ok && se.File == "" {
			se.File = file
		}
		return nil, nil, err
	}
	return models, d.warns, nil
}

func (d *decoder) modelList(data []byte) ([]Model, error) {
	v, err := parseAny(data)
	if err != nil {
		return nil, err
	}
	items, base, err := unwrapList(v, "models")
	if err != nil {
		return nil, err
	}
	var models []Model
	for i, e := range items {
		m, err := d.model(e, index(base, i))
		if err != nil {
			return nil, err
		}
		models = append(models, m)
	}
	return models, nil
}

// unwrapList accepts a bare list, a single entry object, or an object whose
// only key is one of keys holding the list.
func unwrapList(v any, keys ...string) ([]any, string, error) {
	switch t := v.(type) {
	case []any:
		return t, "", nil
	case *object:
		for _, k := range keys {
			inner, ok := t.get(k)
			if !ok {
				continue
			}
			if len(t.keys) != 1 {
				return nil, "", checkKeys(t, "", []string{k})
			}
			l, isList := inner.([]any)
			if !isList {
				return nil, "", errf(k, "want a list, got %s", typeName(inner))
			}
			return l, k, nil
		}
		return []any{t}, "", nil
	case nil:
		return nil, "", nil
	}
	return nil, "", errf("", "want a list of entries, got %s", typeName(v))
}

// ParseRepoRef splits "URL[@ref]". An "@" that belongs to userinfo
// (git@host:owner/repo, https://user@host/...) is not a ref separator: only
// an "@" after the last "/" and after any scp-style ":" is.
func ParseRepoRef(s string) (url, ref string) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at < 0 || at < strings.LastIndexByte(s, '/') || at < strings.LastIndexByte(s, ':') {
		return s, ""
	}
	return s[:at], s[at+1:]
}

// NodeFromRepoRef builds a node from "URL[@ref]".
func NodeFromRepoRef(s string) (Node, []Warning, error) {
	url, ref := ParseRepoRef(s)
	o := &object{keys: []string{"repo"}, vals: map[string]any{"repo": url}}
	if ref != "" {
		o.keys = append(o.keys, "ref")
		o.vals["ref"] = ref
	}
	d := &decoder{}
	n, err := d.node(o, "")
	return n, d.warns, err
}

// Snapshot is what a ComfyUI-Manager snapshot pins.
type Snapshot struct {
	ComfyCommit string
	Nodes       []Node
	Warnings    []Warning
}

// ParseSnapshot reads a ComfyUI-Manager snapshot (JSON, or YAML with the
// same keys, possibly under "custom_nodes"): the core commit and the git
// nodes at their hashes. Registry and single-file nodes cannot be pinned to
// a git commit and are reported as warnings; pips are a frozen environment,
// not requirements, and are skipped.
func ParseSnapshot(data []byte, file string) (*Snapshot, error) {
	v, err := parseAny(data)
	if err != nil {
		return nil, withFile(err, file)
	}
	o, ok := v.(*object)
	if !ok {
		return nil, &Error{File: file, Msg: fmt.Sprintf("a snapshot is an object with \"comfyui\" and \"git_custom_nodes\", got %s", typeName(v))}
	}
	if inner, ok := o.get("custom_nodes"); ok {
		if io, isObj := inner.(*object); isObj {
			if c, ok := o.get("comfyui"); ok {
				io.vals["comfyui"] = c
				io.keys = append(io.keys, "comfyui")
			}
			o = io
		}
	}
	snap := &Snapshot{}
	if c, ok := o.get("comfyui"); ok && c != nil {
		s, isStr := c.(string)
		if !isStr || !(IsFullSHA(s) || IsAbbrevSHA(s)) {
			return nil, &Error{File: file, Path: "comfyui", Msg: fmt.Sprintf("want the core commit SHA, got %s", render(c))}
		}
		snap.ComfyCommit = strings.ToLower(s)
	}
	if g, ok := o.get("git_custom_nodes"); ok && g != nil {
		gm, isObj := g.(*object)
		if !isObj {
			return nil, &Error{File: file, Path: "git_custom_nodes", Msg: "want an object {repo_url: {hash, disabled}}"}
		}
		d := &decoder{}
		urls := append([]string(nil), gm.keys...)
		sort.Strings(urls)
		for _, u := range urls {
			p := join("git_custom_nodes", u)
			entry, isObj := gm.vals[u].(*object)
			if !isObj {
				return nil, &Error{File: file, Path: p, Msg: "want an object {hash, disabled}"}
			}
			if dis, ok := entry.get("disabled"); ok && dis == true {
				snap.Warnings = append(snap.Warnings, Warning{Path: p, Msg: "disabled in the snapshot: skipped"})
				continue
			}
			node := &object{keys: []string{"repo"}, vals: map[string]any{"repo": strings.TrimSuffix(u, "/")}}
			if h, ok := entry.get("hash"); ok && h != nil {
				node.keys = append(node.keys, "commit")
				node.vals["commit"] = h
			}
			n, err := d.node(node, p)
			if err != nil {
				return nil, withFile(err, file)
			}
			snap.Nodes = append(snap.Nodes, n)
		}
		snap.Warnings = append(snap.Warnings, d.warns...)
	}
	if c, ok := o.get("cnr_custom_nodes"); ok {
		if cm, isObj := c.(*object); isObj && len(cm.keys) > 0 {
			snap.Warnings = append(snap.Warnings, Warning{Path: "cnr_custom_nodes", Msg: fmt.Sprintf(
				"registry nodes cannot be pinned to a git commit and were skipped: %s; add them with --nodes URL@ref", strings.Join(cm.keys, ", "))})
		}
	}
	if f, ok := o.get("file_custom_nodes"); ok {
		if fl, isList := f.([]any); isList && len(fl) > 0 {
			snap.Warnings = append(snap.Warnings, Warning{Path: "file_custom_nodes", Msg: fmt.Sprintf("%d single-file nodes skipped: they have no repository to pin", len(fl))})
		}
	}
	return snap, nil
}

func withFile(err error, file string) error {
	if se, ok := err.(*Error); ok && se.File == "" {
		se.File = file
	}
	return err
}
