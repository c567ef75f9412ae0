package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// officialComfyRepo is the core repository a snapshot is pinned against
// when --repo is not given.
const officialComfyRepo = "https://github.com/comfyanonymous/ComfyUI"

type createFlags struct {
	repo       string
	nodes      []string
	nodesFiles []string
	models     []string
	modelFiles []string
	snapshot   string
	output     string
	force      bool
}

func (a *app) createCmd() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create <id>",
		Short: "Write a new version spec with every commit resolved",
		Long: `Write versions/<id>.json from a core repository, custom nodes and models.

--nodes takes inline JSON (an object or a list), a JSON/YAML file, or URL[@ref].
--models takes inline JSON or a JSON/YAML file: a list, or a mapping with a
"models" list (the original tool's models/*.yml). --from-snapshot reads a
ComfyUI-Manager snapshot: its core commit and git custom nodes.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.create(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", "", "ComfyUI core repository, URL[@ref]")
	fl.StringArrayVar(&f.nodes, "nodes", nil, "custom node(s): inline JSON, a JSON/YAML file, or URL[@ref] (repeatable)")
	fl.StringArrayVar(&f.nodesFiles, "nodes-file", nil, "JSON/YAML file with a list of custom nodes (repeatable)")
	fl.StringArrayVar(&f.models, "models", nil, "model(s): inline JSON or a JSON/YAML file (repeatable)")
	fl.StringArrayVar(&f.modelFiles, "models-file", nil, "JSON/YAML model list (repeatable)")
	fl.StringVar(&f.snapshot, "from-snapshot", "", "ComfyUI-Manager snapshot file (core commit and git custom nodes)")
	fl.StringVar(&f.output, "output", "", "where to write the spec (default <versions-dir>/<id>.json)")
	fl.BoolVar(&f.force, "force", false, "overwrite an existing spec")
	return cmd
}

// checkOutputName keeps --output consistent with the id: a spec's file
// name is its version id, so any other name would hold another version.
func checkOutputName(path, id string) error {
	if filepath.Base(path) != id+".json" {
		return usageErr(fmt.Errorf("--output %s: a spec's file name is its version id: name the file %s.json (in any directory)", path, id))
	}
	return nil
}

func (a *app) create(cmd *cobra.Command, id string, f createFlags) error {
	if !spec.ValidID(id) {
		return &spec.Error{Msg: fmt.Sprintf("invalid version id %q: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit", id)}
	}
	if f.repo == "" && f.snapshot == "" {
		return usageErr(fmt.Errorf("--repo is required (e.g. --repo %s@master), unless --from-snapshot gives the core commit", officialComfyRepo))
	}
	out := f.output
	if out == "" {
		out = filepath.Join(a.cfg.VersionsDir, id+".json")
	}
	if err := checkOutputName(out, id); err != nil {
		return err
	}
	if _, err := os.Stat(out); err == nil && !f.force {
		return usageErr(fmt.Errorf("%s already exists: pass --force to overwrite it, or `worker clone` to copy it", out))
	}
	s := &spec.Spec{ID: id, Env: map[string]string{}}
	if f.repo != "" {
		url, ref := spec.ParseRepoRef(f.repo)
		s.Comfy = spec.Repo{URL: url, Ref: ref}
	}
	if f.snapshot != "" {
		data, err := os.ReadFile(f.snapshot)
		if err != nil {
			return usageErr(err)
		}
		snap, err := spec.ParseSnapshot(data, f.snapshot)
		if err != nil {
			return err
		}
		a.logWarnings(f.snapshot, snap.Warnings)
		if s.Comfy.URL == "" {
			s.Comfy.URL = officialComfyRepo
		}
		if snap.ComfyCommit != "" {
			s.Comfy.Commit = snap.ComfyCommit
		}
		s.CustomNodes = append(s.CustomNodes, snap.Nodes...)
	}
	for _, file := range f.nodesFiles {
		nodes, err := readListOf(a, file, spec.ParseNodes)
		if err != nil {
			return err
		}
		s.CustomNodes = append(s.CustomNodes, nodes...)
	}
	for _, x := range f.nodes {
		nodes, err := a.nodesArg(x)
		if err != nil {
			return err
		}
		s.CustomNodes = append(s.CustomNodes, nodes...)
	}
	for _, file := range f.modelFiles {
		models, err := readListOf(a, file, spec.ParseModels)
		if err != nil {
			return err
		}
		s.Models = append(s.Models, models...)
	}

	for _, x := range f.models {
		var models []spec.Model
		var err error
		if isInline(x) {
			models, err = parseInline(x, "--models", spec.ParseModels, a)
		} else {
			models, err = readListOf(a, x, spec.ParseModels)
		}
		if err != nil {
			return err
		}
		s.Models = append(s.Models, models...)
	}
	// Round-trip through the decoder: the assembled spec gets every check a
	// hand-written one does (unique names and targets, merged duplicates).
	s, err := reparse(s, out)
	if err != nil {
		return err
	}
	l, _, err := lock.Resolve(cmd.Context(), s, nil, a.resolver(), lock.Options{Offline: a.cfg.Offline, Logger: a.log})
	if err != nil {
		return err
	}
	s.Comfy.Commit = l.Comfy.Commit
	for i := range s.CustomNodes {
		s.CustomNodes[i].Commit = l.CustomNodes[i].Commit
	}
	s, err = reparse(s, out)
	if err != nil {
		return err
	}
	a.logWarnings(out, s.Warnings)
	data, err := s.Marshal()
	if err != nil {
		return err
	}
	if err := a.writeNew(out, data, f.force); err != nil {
		return err
	}
	if _, _, err := a.lockFor(cmd.Context(), s, false, false); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "[OK] created %s: %s (%d custom nodes, %d models, core %s)\n", id, out, len(s.CustomNodes), len(s.Models), s.Comfy.Commit)
	return nil
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

func (a *app) nodesArg(x string) ([]spec.Node, error) {
	if isInline(x) {
		return parseInline(x, "--nodes", spec.ParseNodes, a)
	}
	if st, err := os.Stat(x); err == nil && !st.IsDir() {
		return readListOf(a, x, spec.ParseNodes)
	}
	n, ws, err := spec.NodeFromRepoRef(x)
	if err != nil {
		return nil, withFlag(err, "--nodes")
	}
	a.logWarnings("--nodes", ws)
	return []spec.Node{n}, nil
}

func parseInline[T any](x, flag string, parse func([]byte, string) ([]T, []spec.Warning, error), a *app) ([]T, error) {
	items, ws, err := parse([]byte(x), flag)
	if err != nil {
		return nil, err
	}
	a.logWarnings(flag, ws)
	return items, nil
}

func readListOf[T any](a *app, file string, parse func([]byte, string) ([]T, []spec.Warning, error)) ([]T, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usageErr(err)
	}
	items, ws, err := parse(data, file)
	if err != nil {
		return nil, err
	}
	a.logWarnings(file, ws)
	return items, nil
}

func withFlag(err error, flag string) error {
	if se, ok := err.(*spec.Error); ok && se.File == "" {
		se.File = flag
	}
	return err
}
