package version

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// GCOptions tune GC.
type GCOptions struct {
	DryRun bool
	// Git removes cached repositories no spec or lock names.
	Git bool
	// PruneModelsDir removes unused models' files in the models directory.
	PruneModelsDir bool
	// MinAge keeps anything written more recently.
	MinAge time.Duration
	// Builds are build directories outside the builds root whose models
	// must be kept.
	Builds []string
	// Local also removes this host's local copies that no process runs.
	Local bool
}

// GCReport is what GC removed (or would remove).
type GCReport struct {
	DryRun bool                  `json:"dry_run"`
	Builds realize.BuildGCReport `json:"builds"`
	Temps  []string              `json:"temp_files,omitempty"`
	Models models.GCReport       `json:"models"`
	Git    *gitsrc.PruneReport   `json:"git,omitempty"`
	// Snapshots are snapshots of builds gc removed, or that are gone.
	Snapshots []Removed `json:"snapshots"`
	// Local are the local copies removed (with Local).
	Local []Removed `json:"local,omitempty"`
}

// GC frees a version's earlier builds once no worker used them for MinAge
// (workers refresh the build they run at every job; the build a version
// points to always stays), then cached models, abandoned downloads and
// (with Git) repositories that no spec, lock or build marker names. It
// decides by these ages, so it is safe while workers on other hosts
// realize; on this host it also holds the cache lock alone, so realizes
// wait for it. A dry run only reads.
func (m *Manager) GC(ctx context.Context, opts GCOptions) (*GCReport, error) {
	layout := m.layout()
	if !opts.DryRun { // a dry run writes not even a lock file
		unlock, err := layout.LockCache(ctx, true, func() { m.log.Info().Msg("waiting for running realizes to finish") })
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	rep := &GCReport{DryRun: opts.DryRun}
	// Earlier builds first: the models only they link become unused.
	var err error
	if rep.Builds, err = realize.CollectBuilds(ctx, m.cfg.BuildsRoot, realize.BuildGCOptions{MinAge: opts.MinAge, DryRun: opts.DryRun}); err != nil {
		return nil, err
	}
	rep.Temps = cache.RemoveStaleTemps(layout.Resolved(), opts.MinAge, opts.DryRun)
	refs, err := m.gcRefs(opts.Builds)
	if err != nil {
		return nil, err
	}
	store, err := models.New(models.Config{Root: layout.Root, Logger: m.log})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	if rep.Models, err = store.GC(ctx, refs.keep, models.GCOptions{MinAge: opts.MinAge, DryRun: opts.DryRun,
		LinkDirs: []string{m.cfg.ModelsDir}, RemoveLinks: opts.PruneModelsDir}); err != nil {
		return nil, err
	}
	if rep.Snapshots, err = m.gcSnapshots(refs.buildKeys, opts); err != nil {
		return nil, err
	}
	if opts.Local {
		if rep.Local, err = m.gcLocal(opts.DryRun); err != nil {
			return nil, err
		}
	}
	if opts.Git {
		g, err := gitsrc.Prune(ctx, layout.Git(), refs.repos, gitsrc.PruneOptions{MinAge: opts.MinAge, DryRun: opts.DryRun})
		if err != nil {
			return nil, err
		}
		rep.Git = &g
	}
	return rep, nil
}

// gcRefs is what the versions on this volume still use.
type gcRefs struct {
	keep  models.Keep
	repos map[string]bool
	// buildKeys are the keys of the builds on disk: their snapshots stay.
	buildKeys map[string]bool
}

// gcRefs collects the models and repositories named by every spec, every
// lock in the cache and every build marker. What cannot be read is
// reported and skipped: a spec that does not parse cannot be realized.
func (m *Manager) gcRefs(extraBuilds []string) (gcRefs, error) {
	refs := gcRefs{keep: models.Keep{Digests: map[string]bool{}}, repos: map[string]bool{}, buildKeys: map[string]bool{}}
	repo := func(u string) {
		if k, err := gitsrc.RepoKey(u); err == nil {
			refs.repos[k] = true
		}
	}
	keepSources := func(srcs ...string) {
		for _, src := range srcs {
			refs.keep.Sources = append(refs.keep.Sources, models.KeepSource{Source: src})
		}
	}
	specs, err := m.Specs()
	if err != nil {
		return refs, err
	}
	for _, e := range specs {
		s, err := spec.LoadFile(e.Path)
		if err != nil {
			m.log.Warn().Err(err).Msg("gc: skipping a spec that does not load")
			continue
		}
		repo(s.Comfy.URL)
		for _, n := range s.CustomNodes {
			repo(n.URL)
		}
		for _, mod := range s.Models {
			refs.keep.Digests[mod.SHA256] = true
			keepSources(mod.Sources...)
		}
	}
	locks, _ := filepath.Glob(filepath.Join(m.layout().Resolved(), "*.lock.json"))
	for _, p := range locks {
		l, err := lock.Read(p)
		if err != nil {
			m.log.Warn().Err(err).Str("lock", p).Msg("gc: skipping a lock that does not read")
			continue
		}
		repo(l.Comfy.Repo)
		for _, n := range l.CustomNodes {
			repo(n.Repo.Repo)
		}
		for _, mod := range l.Models {
			refs.keep.Digests[mod.SHA256] = true
			keepSources(append([]string{mod.Source}, mod.Sources...)...)
		}
	}
	builds := realize.BuildDirs(m.cfg.BuildsRoot)
	if m.cfg.Target != "" {
		builds = append(builds, m.cfg.Target)
	}
	for _, dir := range extraBuilds {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return refs, &InputError{fmt.Sprintf("--build %s: not a build directory", dir)}
		}
	}
	for _, dir := range append(builds, extraBuilds...) {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		mk, err := realize.ReadMarker(dir, "")
		if err != nil {
			return refs, fmt.Errorf("gc: %s: %w", dir, err)
		}
		for _, pm := range mk.Models {
			refs.keep.Digests[pm.SHA256] = true
		}
		if mk.Complete {
			if key, err := BuildKey(mk.VersionID, dir); err == nil {
				refs.buildKeys[key] = true
			}
		}
	}
	delete(refs.keep.Digests, "")
	return refs, nil
}
