package version

import (
	"context"
	"fmt"
	"io"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Validation is what validate shows: the spec's entries as the lock pins
// them.
type Validation struct {
	VersionID   string         `json:"version_id"`
	Spec        string         `json:"spec"`
	LockPath    string         `json:"lock_path"`
	LockReused  bool           `json:"lock_reused"`
	Resolved    int            `json:"resolved_remotely"`
	Warnings    []string       `json:"warnings"`
	Comfy       lock.Repo      `json:"comfy"`
	CustomNodes []lock.Node    `json:"custom_nodes"`
	Models      []lock.Model   `json:"models"`
	Python      []string       `json:"python_packages"`
	Options     spec.Options   `json:"options"`
	Env         map[string]int `json:"env_keys"`
}

// Validate loads a spec (an id or a file, as LoadArg takes them), pins it
// in its lock and reports the result.
func (m *Manager) Validate(ctx context.Context, arg string, opts LockOptions) (*Validation, error) {
	s, err := m.LoadArg(arg)
	if err != nil {
		return nil, err
	}
	l, st, err := m.Lock(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	return newValidation(s, l, m.LockPath(s.ID), st), nil
}

func newValidation(s *spec.Spec, l *lock.Lock, lockPath string, st lock.Stats) *Validation {
	p := &Validation{
		VersionID: s.ID, Spec: absPath(s.File), LockPath: lockPath, LockReused: st.Reused, Resolved: st.Remote,
		Warnings: []string{}, Comfy: l.Comfy, CustomNodes: l.CustomNodes, Models: l.Models,
		Python: l.PythonPackages, Options: l.Options, Env: map[string]int{},
	}
	for _, w := range s.Warnings {
		p.Warnings = append(p.Warnings, w.String())
	}
	// Env values may hold secrets: the plan shows only which keys are set.
	for k, v := range s.Env {
		p.Env[k] = len(v)
	}
	return p
}

// WriteText writes the report for a terminal.
func (p *Validation) WriteText(w io.Writer) {
	fmt.Fprintf(w, "[OK] %s: spec valid, every ref pinned\n", p.VersionID)
	fmt.Fprintf(w, "version_id: %s\nspec: %s\nlock: %s\n", p.VersionID, p.Spec, p.LockPath)
	fmt.Fprintf(w, "comfy: %s %s-> %s\n", p.Comfy.Repo, refArrow(p.Comfy.Ref), p.Comfy.Commit)
	fmt.Fprintf(w, "custom_nodes: %d\n", len(p.CustomNodes))
	for _, n := range p.CustomNodes {
		dir := ""
		if n.Dir != n.Name {
			dir = " (dir " + n.Dir + ")"
		}
		fmt.Fprintf(w, "  - %s%s: %s %s-> %s\n", n.Name, dir, n.Repo.Repo, refArrow(n.Ref), n.Commit)
	}
	fmt.Fprintf(w, "models: %d\n", len(p.Models))
	for _, m := range p.Models {
		digest := "sha256 unknown until first download"
		if m.SHA256 != "" {
			digest = "sha256:" + m.SHA256[:12] + "…"
		}
		extra := ""
		if n := len(m.Sources); n > 1 {
			extra = ", " + units.Count(n, "source")
		}
		fmt.Fprintf(w, "  - %s -> %s (%s%s)\n", m.Name, m.TargetPath, digest, extra)
	}
	if len(p.Python) > 0 {
		fmt.Fprintf(w, "python_packages: %v\n", p.Python)
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintf(w, "warnings: %d (see the log)\n", len(p.Warnings))
	}
}

func refArrow(ref string) string {
	if ref == "" {
		return ""
	}
	return ref + " "
}
