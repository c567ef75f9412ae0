package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/version"
)

type gcFlags struct {
	dryRun, git, json bool
	pruneModelsDir    bool
	local             bool
	minAge            time.Duration
	builds            []string
}

func (a *app) gcCmd() *cobra.Command {
	var f gcFlags
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove old builds, cached models, partial downloads and (with --git) repositories no version uses",
		Long: `gc frees space in the shared cache and the builds root. A version's earlier
builds go once no worker used them for --min-age (workers refresh the build
they run at every job); the build a version points to always stays. A model blob stays while any spec, lock
or build marker names it, while a file elsewhere is a hard link to it (removing
it would free nothing), or while it is younger than --min-age. A model placed in
MODELS_DIR stays while its file there does; --prune-models-dir removes those
files too when no version uses them. Partial downloads
nobody resumed for --min-age go too. With --git, cached repositories that no
spec or lock names go as well (a submodule's repository is fetched again when a
build needs it). gc decides by these ages, so it is safe while workers on other
hosts realize; on this host, realizes also wait while gc runs.
Builds outside the builds root (realized with --target) are not seen: name them
with --build so their symlinked models are kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.gc(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "say what would be removed; remove nothing")
	fl.BoolVar(&f.git, "git", false, "also remove cached git repositories no spec or lock names")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	fl.BoolVar(&f.pruneModelsDir, "prune-models-dir", false, "also remove unused models' links in MODELS_DIR (they keep the blob otherwise)")
	fl.BoolVar(&f.local, "local", false, "also remove this host's local copies of builds (COMFY_LOCAL_DIR) that no worker runs")
	fl.DurationVar(&f.minAge, "min-age", 24*time.Hour, "keep anything written more recently than this")
	fl.StringArrayVar(&f.builds, "build", nil, "a build directory outside the builds root whose models to keep (repeatable)")
	return cmd
}

func (a *app) gc(ctx context.Context, f gcFlags) error {
	rep, err := a.manager(nil).GC(ctx, version.GCOptions{
		DryRun: f.dryRun, Git: f.git, PruneModelsDir: f.pruneModelsDir, MinAge: f.minAge, Builds: f.builds, Local: f.local,
	})
	if err != nil {
		return err
	}
	if f.json {
		return json.NewEncoder(a.stdout).Encode(rep)
	}
	verb := "removed"
	if f.dryRun {
		verb = "would remove"
	}
	for _, b := range rep.Builds.Removed {
		fmt.Fprintf(a.stdout, "%s build %s (%s)\n", verb, b.Path, units.Bytes(b.Size))
	}
	m := rep.Models
	for _, b := range m.Blobs {
		fmt.Fprintf(a.stdout, "%s model sha256:%s (%s)\n", verb, b.SHA256, units.Bytes(b.Size))
		for _, l := range b.Links {
			fmt.Fprintf(a.stdout, "  and its link %s\n", l)
		}
	}
	for _, p := range m.Partials {
		fmt.Fprintf(a.stdout, "%s partial download %s (%s)\n", verb, filepath.Base(p.Path), units.Bytes(p.Size))
	}
	freed := m.Freed + rep.Builds.Freed
	if rep.Git != nil {
		for _, r := range rep.Git.Removed {
			fmt.Fprintf(a.stdout, "%s git repository %s (%s)\n", verb, r.Key, units.Bytes(r.Size))
			freed += r.Size
		}
	}
	for _, r := range append(rep.Snapshots, rep.Local...) {
		fmt.Fprintf(a.stdout, "%s %s (%s)\n", verb, r.Path, units.Bytes(r.Size))
		freed += r.Size
	}
	fmt.Fprintf(a.stdout, "%s %s; kept %s in use, %d placed elsewhere, %d younger than %s, %d being fetched\n",
		verb, units.Bytes(freed), units.Count(m.Kept, "model"), m.Linked, m.Recent, f.minAge, m.Busy)
	return nil
}
