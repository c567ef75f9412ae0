package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
)

type gcFlags struct {
	dryRun, git, json bool
	pruneModelsDir    bool
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
	fl.DurationVar(&f.minAge, "min-age", 24*time.Hour, "keep anything written more recently than this")
	fl.StringArrayVar(&f.builds, "build", nil, "a build directory outside the builds root whose models to keep (repeatable)")
	return cmd
}

// gcRefs is what the versions on this volume still use.
type gcRefs struct {
	keep  models.Keep
	repos map[string]bool
}

func (a *app) gc(ctx context.Context, f gcFlags) error {
	layout := cache.Layout{Root: a.cacheRoot()}
	if !f.dryRun { // a dry run only reads, and writes not even a lock file
		unlock, err := layout.LockCache(ctx, true, func() { a.log.Info().Msg("waiting for running realizes to finish") })
		if err != nil {
			return err
		}
		defer unlock()
	}
	// Earlier builds first: the models only they link become unused.
	builds, err := realize.CollectBuilds(ctx, a.cfg.Cache.BuildsRoot(), realize.BuildGCOptions{MinAge: f.minAge, DryRun: f.dryRun})
	if err != nil {
		return err
	}
	temps := cache.RemoveStaleTemps(layout.Resolved(), f.minAge, f.dryRun)
	refs, err := a.gcRefs(f.builds)
	if err != nil {
		return err
	}
	store, err := models.New(models.Config{Root: layout.Root, Logger: a.log})
	if err != nil {
		return err
	}
	defer store.Close()
	rep := struct {
		DryRun bool                  `json:"dry_run"`
		Builds realize.BuildGCReport `json:"builds"`
		Temps  []string              `json:"temp_files,omitempty"`
		Models models.GCReport       `json:"models"`
		Git    *gitsrc.PruneReport   `json:"git,omitempty"`
	}{DryRun: f.dryRun, Builds: builds, Temps: temps}
	if rep.Models, err = store.GC(ctx, refs.keep, models.GCOptions{MinAge: f.minAge, DryRun: f.dryRun,
		LinkDirs: []string{a.modelsDir("")}, RemoveLinks: f.pruneModelsDir}); err != nil {
		return err
	}
	if f.git {
		g, err := gitsrc.Prune(ctx, layout.Git(), refs.repos, gitsrc.PruneOptions{MinAge: f.minAge, DryRun: f.dryRun})
		if err != nil {
			return err
		}
		rep.Git = &g
	}
	if f.json {
		return json.NewEncoder(a.stdout).Encode(rep)
	}
	verb := "removed"
	if f.dryRun {
		verb = "would remove"
	}
	for _, b := range builds.Removed {
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
	freed := m.Freed + builds.Freed
	if rep.Git != nil {
		for _, r := range rep.Git.Removed {
			fmt.Fprintf(a.stdout, "%s git repository %s (%s)\n", verb, r.Key, units.Bytes(r.Size))
			freed += r.Size
		}
	}
	fmt.Fprintf(a.stdout, "%s %s; kept %d models in use, %d placed elsewhere, %d younger than %s, %d being fetched\n",
		verb, units.Bytes(freed), m.Kept, m.Linked, m.Recent, f.minAge, m.Busy)
	return nil
}

// gcRefs collects the models and repositories named by every spec, every
// lock in the cache and every build marker. What cannot be read is
// reported and skipped: a spec that does not parse cannot be realized.
func (a *app) gcRefs(extraBuilds []string) (gcRefs, error) {
	refs := gcRefs{keep: models.Keep{Digests: map[string]bool{}}, repos: map[string]bool{}}
	repo := func(u string) {
		if k, err := gitsrc.RepoKey(u); err == nil {
			refs.repos[k] = true
		}
	}
	for _, dir := range a.specDirs() {
		entries, err := spec.List(dir)
		if err != nil {
			return refs, err
		}
		for _, e := range entries {
			s, err := spec.LoadFile(e.Path)
			if err != nil {
				a.log.Warn().Err(err).Msg("gc: skipping a spec that does not load")
				continue
			}
			repo(s.Comfy.URL)
			for _, n := range s.CustomNodes {
				repo(n.URL)
			}
			for _, m := range s.Models {
				refs.keep.Digests[m.SHA256] = true
				for _, src := range m.Sources {
					refs.keep.Sources = append(refs.keep.Sources, models.KeepSource{Source: src})
				}
			}
		}
	}
	locks, _ := filepath.Glob(filepath.Join(cache.Layout{Root: a.cacheRoot()}.Resolved(), "*.lock.json"))
	for _, p := range locks {
		l, err := lock.Read(p)
		if err != nil {
			a.log.Warn().Err(err).Str("lock", p).Msg("gc: skipping a lock that does not read")
			continue
		}
		repo(l.Comfy.Repo)
		for _, n := range l.CustomNodes {
			repo(n.Repo.Repo)
		}
		for _, m := range l.Models {
			refs.keep.Digests[m.SHA256] = true
			for _, src := range append([]string{m.Source}, m.Sources...) {
				refs.keep.Sources = append(refs.keep.Sources, models.KeepSource{Source: src})
			}
		}
	}
	builds := realize.BuildDirs(a.cfg.Cache.BuildsRoot())
	if a.cfg.ComfyHome != "" {
		builds = append(builds, a.cfg.ComfyHome)
	}
	for _, dir := range extraBuilds {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return refs, usageErr(fmt.Errorf("--build %s: not a build directory", dir))
		}
	}
	for _, dir := range append(builds, extraBuilds...) {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		m, err := realize.ReadMarker(dir, "")
		if err != nil {
			return refs, fmt.Errorf("gc: %s: %w", dir, err)
		}
		for _, pm := range m.Models {
			refs.keep.Digests[pm.SHA256] = true
		}
	}
	delete(refs.keep.Digests, "")
	return refs, nil
}
