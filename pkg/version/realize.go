package version

import (
	"context"
	"time"

	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/pyenv"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Realize builds s's version at its build directory as l pins it. It runs
// under the shared cache lock, so a gc waits for it; a cache it cannot
// even make the lock in (a read-only volume with everything built) is
// realized without it, as no gc can run there either. Progress goes to the
// configured display and to p.
//
// The build's snapshot is packed when the realize changed the build, or
// when the build has none (a build of an earlier release).
func (m *Manager) Realize(ctx context.Context, s *spec.Spec, l *lock.Lock, p progress.Func) (*realize.Result, error) {
	res, _, err := m.realize(ctx, s, l, p, true)
	return res, err
}

// realize is Realize, also returning the build's key ("" when it has no
// snapshot). A job's realize (always false) does not pack a build it did
// not change: the worker packs it while it copies it, in one pass over
// the volume.
func (m *Manager) realize(ctx context.Context, s *spec.Spec, l *lock.Lock, p progress.Func, always bool) (*realize.Result, string, error) {
	cfg, done, err := m.realizeConfig(s, l, p, false)
	if err != nil {
		return nil, "", err
	}
	defer done()
	unlock, err := m.layout().LockCache(ctx, false, func() {
		m.log.Info().Msg("waiting for a cache gc to finish")
	})
	switch {
	case err == nil:
		defer unlock()
	case ctx.Err() != nil:
		return nil, "", err
	default:
		m.log.Debug().Err(err).Msg("no cache lock; realizing without it")
	}
	res, err := realize.Realize(ctx, cfg, l)
	if err != nil || res.NoOp && !always {
		return res, "", err
	}
	// The snapshot is part of a realized build: the worker that realizes a
	// version packs it once, and every other worker unpacks it.
	start := time.Now()
	key, detail, err := m.publishSnapshot(ctx, s.ID, res.BuildDir)
	if err != nil {
		// Workers pack it themselves when they need it.
		m.log.Warn().Err(err).Msg("the build has no snapshot")
	} else if detail != "" {
		res.Steps = append(res.Steps, realize.Step{Name: "snapshot", Action: "done", Detail: detail, Took: time.Since(start)})
		m.log.Info().Str("step", "snapshot").Str("action", "done").Str("detail", detail).Int64("took_ms", time.Since(start).Milliseconds()).Msg("realize")
	}
	return res, key, nil
}

// Plan says what Realize would do, changing nothing.
func (m *Manager) Plan(ctx context.Context, s *spec.Spec, l *lock.Lock) (*realize.Plan, error) {
	cfg, done, err := m.realizeConfig(s, l, nil, true)
	if err != nil {
		return nil, err
	}
	defer done()
	return realize.DryRun(ctx, cfg, l)
}

// realizeConfig wires realize's components. done closes the display.
func (m *Manager) realizeConfig(s *spec.Spec, l *lock.Lock, also progress.Func, quiet bool) (realize.Config, func(), error) {
	layout := m.layout()
	offline := m.cfg.Offline || l.Options.Offline
	report, done := progress.Func(nil), func() {}
	if m.cfg.Display != nil && !quiet {
		report, done = m.cfg.Display()
	}
	if also != nil {
		report = progress.Tee(report, also)
	}
	mc := models.Config{
		Root: layout.Root, HFToken: m.cfg.HFToken, CivitaiToken: m.cfg.CivitaiToken, Offline: offline,
		HFEndpoint: m.cfg.HFEndpoint, CivitaiEndpoint: m.cfg.CivitaiEndpoint,
		BufferedWrites: m.cfg.BufferedModelWrites, Logger: m.log, Progress: report,
	}
	var err error
	if m.cfg.ModelGCS != nil {
		mc.GCSOptions, err = m.cfg.ModelGCS()
	}
	var store *models.Store
	if err == nil {
		store, err = models.New(mc)
	}
	if err != nil {
		done()
		return realize.Config{}, nil, err
	}
	closeDisplay := done
	done = func() {
		store.Close()
		closeDisplay()
	}
	lockPath := m.LockPath(s.ID)
	cfg := realize.Config{
		BuildDir:  m.BuildDir(s.ID),
		ModelsDir: m.cfg.ModelsDir,
		Jobs:      m.cfg.Jobs,
		Trees: &gitsrc.Trees{
			Client:   gitsrc.NewClient(gitsrc.Options{Rewrites: m.cfg.GitRewrites, Logger: m.log, Offline: offline}),
			CacheDir: layout.Git(), Logger: m.log,
		},
		Models:   store,
		Python:   pyenv.Config{WheelsDir: m.cfg.WheelsDir, Offline: offline, PipCacheDir: layout.Pip()},
		Logger:   m.log,
		Progress: report,
		SaveLock: func(l *lock.Lock) error { return lock.Write(lockPath, l) },
		// A directory the user named is realized in place; the builds
		// root gets immutable builds behind comfy-<id>.
		InPlace: m.cfg.Target != "",
	}
	return cfg, done, nil
}
