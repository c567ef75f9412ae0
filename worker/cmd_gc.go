package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

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
builds go once no worker used them for --min-age (workers refresh the build they
run at every job); the build a version points to always stays, and so does its
snapshot (snapshots of builds that are gone go after --min-age). A model blob
stays while any spec, lock or build marker names it, while a file elsewhere is
a hard link to it (removing it would free nothing), or while it is younger than
--min-age. A model placed in MODELS_DIR stays while its file there does;
--prune-models-dir removes those files too when no version uses them. Partial
downloads nobody resumed for --min-age go too. With --git, cached repositories
that no spec or lock names go as well (a submodule's repository is fetched
again when a build needs it); with --local, this machine's local copies of
builds that no worker runs. gc decides by these ages, so it is safe while
workers on other hosts realize; on this host, realizes also wait while gc runs.
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
	rep.WriteText(a.stdout, f.minAge)
	return nil
}
