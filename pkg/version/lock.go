package version

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/runpod-comfy/worker/internal/fsutil"
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
	if (opts.Update || m.cfg.Update) && !opts.NoSave {
		if s2, l2 := m.pinSpec(ctx, s, l); s2 != nil {
			s, l = s2, l2
		}
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

// pinSpec writes the commits an update resolved into the spec's own
// "commit" fields (where it has them beside a ref), so spec and lock agree
// again and the spec keeps pinning. The rest of the file is kept byte for
// byte. It returns the re-read spec and its lock, or nil when nothing
// changed or the spec cannot be written (a read-only image directory): the
// lock then follows the ref, as the log says.
func (m *Manager) pinSpec(ctx context.Context, s *spec.Spec, l *lock.Lock) (*spec.Spec, *lock.Lock) {
	want := map[string]string{}
	if s.Comfy.Ref != "" && s.Comfy.Commit != "" && s.Comfy.Commit != l.Comfy.Commit {
		want["comfy"] = l.Comfy.Commit
	}
	for i, n := range s.CustomNodes {
		if n.Ref != "" && n.Commit != "" && n.Commit != l.CustomNodes[i].Commit {
			want[fmt.Sprintf("custom_nodes[%d]", i)] = l.CustomNodes[i].Commit
		}
	}
	if len(want) == 0 || s.File == "" {
		return nil, nil
	}
	fail := func(err error) (*spec.Spec, *lock.Lock) {
		m.log.Warn().Err(err).Str("file", s.File).Msg("could not write the new commits into the spec; its commit fields now lag behind the lock: update them by hand")
		return nil, nil
	}
	data, err := os.ReadFile(s.File)
	if err != nil {
		return fail(err)
	}
	out, changed, err := spec.SetCommits(data, want)
	if err != nil {
		return fail(err)
	}
	// The decoded result must be the same spec with the new commits, entry
	// for entry, before the file is replaced.
	s2, err := spec.Decode(out, s.File)
	if err != nil {
		return fail(err)
	}
	same := len(s2.CustomNodes) == len(s.CustomNodes) && s2.Comfy.URL == s.Comfy.URL &&
		(want["comfy"] == "" || s2.Comfy.Commit == want["comfy"])
	for i := 0; same && i < len(s.CustomNodes); i++ {
		w := want[fmt.Sprintf("custom_nodes[%d]", i)]
		same = s2.CustomNodes[i].URL == s.CustomNodes[i].URL && (w == "" || s2.CustomNodes[i].Commit == w)
	}
	if !same {
		return fail(errors.New("the rewritten spec does not decode to the same entries"))
	}
	st, err := os.Stat(s.File)
	if err != nil {
		return fail(err)
	}
	if err := fsutil.WriteFileAtomic(s.File, out, st.Mode().Perm()); err != nil {
		return fail(err)
	}
	// Every entry is pinned by the spec now: no remote is asked.
	l2, _, err := lock.Resolve(ctx, s2, l, m.resolver(), lock.Options{Offline: true, Logger: m.log})
	if err != nil {
		return fail(err)
	}
	m.log.Info().Str("file", s.File).Strs("entries", changed).Msg("--update: wrote the new commits into the spec")
	return s2, l2
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
