package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

type resolveFlags struct {
	offline, update bool
}

func (f *resolveFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.offline, "offline", false, "use only the lock; fail if a ref is not pinned there (env COMFY_OFFLINE)")
	cmd.Flags().BoolVar(&f.update, "update", false, "re-resolve every ref to the newest commit")
}

func (a *app) validateCmd() *cobra.Command {
	var f resolveFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate <id>",
		Short: "Check a spec, resolve its refs into the lock, and print the plan",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.loadSpec(args[0])
			if err != nil {
				return err
			}
			l, st, err := a.lockFor(cmd.Context(), s, f.offline, f.update)
			if err != nil {
				return err
			}
			p := newPlan(s, l, a.lockPath(s.ID), st)
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
			p.writeText(a.stdout)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}

func (a *app) resolveCmd() *cobra.Command {
	var f resolveFlags
	cmd := &cobra.Command{
		Use:   "resolve <id>",
		Short: "Pin every ref of a spec to a commit in its lock file",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.loadSpec(args[0])
			if err != nil {
				return err
			}
			_, st, err := a.lockFor(cmd.Context(), s, f.offline, f.update)
			if err != nil {
				return err
			}
			state := "resolved"
			if st.Reused {
				state = "up to date"
			}
			fmt.Fprintf(a.stdout, "version_id: %s\nlock: %s (%s, %d refs asked remotely)\n", s.ID, a.lockPath(s.ID), state, st.Remote)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// plan is what validate shows: the spec's entries as the lock pins them.
type plan struct {
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

func newPlan(s *spec.Spec, l *lock.Lock, lockPath string, st lock.Stats) plan {
	p := plan{
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

func (p plan) writeText(w io.Writer) {
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
			extra = fmt.Sprintf(", %d sources", n)
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

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
