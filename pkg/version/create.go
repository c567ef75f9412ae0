package version

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/runpod-comfy/worker/pkg/spec"
)

// OfficialComfyRepo is the core repository a snapshot is pinned against
// when no core repository is named.
const OfficialComfyRepo = "https://github.com/comfyanonymous/ComfyUI"

// NewSpec is what `create` is given: each list entry is inline JSON, a
// JSON/YAML file, or (for nodes) URL[@ref].
type NewSpec struct {
	ID string
	// Repo is the core repository, URL[@ref].
	Repo string
	// Snapshot is a ComfyUI-Manager snapshot file: its core commit and
	// git custom nodes.
	Snapshot   string
	Nodes      []string
	NodesFiles []string
	Models     []string
	ModelFiles []string
	// File is where the spec will be written (named in errors).
	File string
	// SystemSitePackages lets the venv see the interpreter's packages: the
	// recommended image's torch (several GB) is then used, not installed.
	SystemSitePackages bool
}

// Create assembles a new spec from req and pins every ref to a commit, so
// the spec written from it realizes the same thing on every host.
func (m *Manager) Create(ctx context.Context, req NewSpec) (*spec.Spec, error) {
	if !spec.ValidID(req.ID) {
		return nil, &spec.Error{Msg: fmt.Sprintf("invalid version id %q: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit", req.ID)}
	}
	if req.Repo == "" && req.Snapshot == "" {
		return nil, &InputError{fmt.Sprintf("--repo is required (e.g. --repo %s@master), unless --from-snapshot gives the core commit", OfficialComfyRepo)}
	}
	s := &spec.Spec{ID: req.ID, Env: map[string]string{}, Options: spec.Options{SystemSitePackages: req.SystemSitePackages}}
	if req.Repo != "" {
		url, ref := spec.ParseRepoRef(req.Repo)
		s.Comfy = spec.Repo{URL: url, Ref: ref}
	}
	if req.Snapshot != "" {
		data, err := readInput(req.Snapshot)
		if err != nil {
			return nil, err
		}
		snap, err := spec.ParseSnapshot(data, req.Snapshot)
		if err != nil {
			return nil, err
		}
		m.LogWarnings(req.Snapshot, snap.Warnings)
		if s.Comfy.URL == "" {
			s.Comfy.URL = OfficialComfyRepo
		}
		if snap.ComfyCommit != "" {
			s.Comfy.Commit = snap.ComfyCommit
		}
		s.CustomNodes = append(s.CustomNodes, snap.Nodes...)
	}
	for _, file := range req.NodesFiles {
		nodes, err := parseList(m, file, "", spec.ParseNodes)
		if err != nil {
			return nil, err
		}
		s.CustomNodes = append(s.CustomNodes, nodes...)
	}
	for _, x := range req.Nodes {
		nodes, err := m.nodesArg(x)
		if err != nil {
			return nil, err
		}
		s.CustomNodes = append(s.CustomNodes, nodes...)
	}
	for _, file := range req.ModelFiles {
		models, err := parseList(m, file, "", spec.ParseModels)
		if err != nil {
			return nil, err
		}
		s.Models = append(s.Models, models...)
	}
	for _, x := range req.Models {
		models, err := parseList(m, x, "--models", spec.ParseModels)
		if err != nil {
			return nil, err
		}
		s.Models = append(s.Models, models...)
	}
	// Round-trip through the decoder: the assembled spec gets every check a
	// hand-written one does (unique names and targets, merged duplicates).
	s, err := reparse(s, req.File)
	if err != nil {
		return nil, err
	}
	l, err := m.Pin(ctx, s)
	if err != nil {
		return nil, err
	}
	s.Comfy.Commit = l.Comfy.Commit
	for i := range s.CustomNodes {
		s.CustomNodes[i].Commit = l.CustomNodes[i].Commit
	}
	if s, err = reparse(s, req.File); err != nil {
		return nil, err
	}
	m.LogWarnings(req.File, s.Warnings)
	return s, nil
}

func reparse(s *spec.Spec, file string) (*spec.Spec, error) {
	data, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	return spec.Decode(data, file)
}

func isInline(x string) bool {
	t := bytes.TrimSpace([]byte(x))
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

func (m *Manager) nodesArg(x string) ([]spec.Node, error) {
	if st, err := os.Stat(x); isInline(x) || (err == nil && !st.IsDir()) {
		return parseList(m, x, "--nodes", spec.ParseNodes)
	}
	n, ws, err := spec.NodeFromRepoRef(x)
	if err != nil {
		if se, ok := err.(*spec.Error); ok && se.File == "" {
			se.File = "--nodes"
		}
		return nil, err
	}
	m.LogWarnings("--nodes", ws)
	return []spec.Node{n}, nil
}

// parseList parses x, inline JSON (named flag in messages) or a file.
func parseList[T any](m *Manager, x, flag string, parse func([]byte, string) ([]T, []spec.Warning, error)) ([]T, error) {
	data, name := []byte(x), flag
	if flag == "" || !isInline(x) {
		var err error
		if data, err = readInput(x); err != nil {
			return nil, err
		}
		name = x
	}
	items, ws, err := parse(data, name)
	if err != nil {
		return nil, err
	}
	m.LogWarnings(name, ws)
	return items, nil
}

func readInput(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &InputError{err.Error()}
	}
	return data, nil
}
