package version

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// LockOptions tune Lock.
type LockOptions struct {
	// Update re-resolves every ref (Config.Update does too).
	Update bool
	// Offline answers from the lock only (Config.Offline does too).
	Offline bool
	// NoSave keeps a changed lock in memory: a dry run writes nothing.
	NoSave bool
}

// Lock returns s's lock: the one on disk when it matches the spec and no
// update is asked, else a new resolution (only what changed is asked
// remotely), written atomically unless opts.NoSave.
func (m *Manager) Lock(ctx context.Context, s *spec.Spec, opts LockOptions) (*lock.Lock, lock.Stats, error) {
	path := m.LockPath(s.ID)
	prev, err := lock.Read(path)
	if err != nil && !errors.Is(err, lock.ErrNoLock) {
		m.log.Warn().Err(err).Msg("ignoring unreadable lock")
		prev = nil
	}
	l, st, err := lock.Resolve(ctx, s, prev, m.resolver(), lock.Options{
		Update: opts.Update || m.cfg.Update, Offline: opts.Offline || m.cfg.Offline, Logger: m.log,
	})
	if err != nil {
		return nil, st, err
	}
	if !st.Reused && !opts.NoSave {
		l.SourceSpec = absPath(s.File)
		if err := lock.Write(path, l); err != nil {
			return nil, st, err
		}
	}
	m.log.Debug().Str("lock", path).Bool("reused", st.Reused).Int("remote", st.Remote).Msg("lock ready")
	return l, st, nil
}

// Pin resolves every ref of s afresh, without reading or writing its lock:
// what `create` writes into a new spec.
func (m *Manager) Pin(ctx context.Context, s *spec.Spec) (*lock.Lock, error) {
	l, _, err := lock.Resolve(ctx, s, nil, m.resolver(), lock.Options{Offline: m.cfg.Offline, Logger: m.log})
	return l, err
}

func (m *Manager) resolver() lock.RefResolver {
	// With the git cache, an abbreviated commit that is no ref tip can be
	// expanded from the repository's history, which realize reuses.
	return gitsrc.NewClient(gitsrc.Options{Rewrites: m.cfg.GitRewrites, Logger: m.log, CacheDir: cache.Layout{Root: m.cfg.CacheRoot}.Git()})
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
