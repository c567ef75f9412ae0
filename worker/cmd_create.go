package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/version"
)

type createFlags struct {
	repo       string
	nodes      []string
	nodesFiles []string
	models     []string
	modelFiles []string
	snapshot   string
	output     string
	force      bool
	sitePkgs   bool
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
	fl.BoolVar(&f.sitePkgs, "system-site-packages", true, "let the venv use the image's Python packages (its torch); =false for a self-contained venv")
	return cmd
}

func (a *app) create(cmd *cobra.Command, id string, f createFlags) error {
	m := a.manager(nil)
	out, err := m.SpecPath(id, f.output, f.force)
	if err != nil {
		return err
	}
	s, err := m.Create(cmd.Context(), version.NewSpec{
		ID: id, Repo: f.repo, Snapshot: f.snapshot, Nodes: f.nodes, NodesFiles: f.nodesFiles,
		Models: f.models, ModelFiles: f.modelFiles, File: out, SystemSitePackages: f.sitePkgs,
	})
	if err != nil {
		return err
	}
	data, err := s.Marshal()
	if err != nil {
		return err
	}
	if err := version.WriteSpec(out, data); err != nil {
		return err
	}
	if _, _, err := m.Lock(cmd.Context(), s, version.LockOptions{}); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "[OK] created %s: %s (%s, %s, core %s)\n", id, out,
		units.Count(len(s.CustomNodes), "custom node"), units.Count(len(s.Models), "model"), s.Comfy.Commit)
	return nil
}
