package version

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Build is a realized version, ready to run.
type Build struct {
	VersionID string
	Dir       string // the ComfyUI directory (COMFY_HOME)
	Python    string // the build's venv python
	Env       map[string]string
	ComfyArgs []string
	// Digest changes whenever the build changes; a warm ComfyUI of another
	// digest is restarted.
	Digest string
	// Source is the build on the volume: Dir itself, or the build Dir is a
	// local copy of (see Local).
	Source string
	// Key identifies the build's content: its snapshot and local copies.
	Key string
	// LocalCopy is set on a build returned by Local that runs from a copy.
	LocalCopy bool
	// Models are the version's model files, for reading them ahead.
	Models []string

	// manager makes local copies; nil when the build runs where it is.
	manager *Manager
	// early is the copy Prepare started, for the first Local.
	early *early
}

// Prepare finds id's version, pins it and realizes it if needed; realize's
// locks make workers sharing a volume do the work once. A version prepared
// before is answered from memory while its spec, lock and build marker are
// unchanged on disk (three stats), keeping per-job overhead small.
func (m *Manager) Prepare(ctx context.Context, id string, p progress.Func) (*Build, error) {
	if b := m.prepared.get(id); b != nil {
		realize.Touch(b.Dir) // the lease that keeps gc away from a build in use
		return b, nil
	}
	s, err := m.Load(id)
	if err != nil {
		return nil, err
	}
	l, _, err := m.Lock(ctx, s, LockOptions{})
	if err != nil {
		return nil, err
	}
	pointer := m.BuildDir(s.ID)
	local := m.wantsLocal(pointer)
	var early *early
	if local {
		// The build the version points to now; builds are immutable, so a
		// copy of it stays right if realize keeps it.
		if dir, err := filepath.EvalSymlinks(pointer); err == nil {
			if key, ok := completeKey(s.ID, dir, l); ok {
				early = m.startEarly(ctx, s.ID, dir, key)
			}
		}
	}
	res, key, err := m.realize(ctx, s, l, p, false)
	if err != nil {
		early.drop()
		return nil, err
	}
	b := m.newBuild(s.ID, res.BuildDir, l)
	if local {
		switch {
		case key != "":
		case early != nil && res.NoOp:
			key = early.key
		default:
			if key, err = BuildKey(s.ID, b.Dir); err != nil {
				early.drop()
				return nil, err
			}
		}
		b.Key, b.manager = key, m
		if early != nil && early.key == key && early.source == filepath.Clean(res.BuildDir) {
			b.early = early
		} else {
			early.drop()
		}
	}
	// The version's pointer is watched too: a switch to another build is
	// a change.
	m.prepared.put(id, b, s.File, m.LockPath(id), filepath.Join(res.BuildDir, realize.MarkerFile), pointer)
	return b, nil
}

func (m *Manager) newBuild(id, dir string, l *lock.Lock) *Build {
	b := &Build{
		VersionID: id, Dir: dir, Python: filepath.Join(dir, ".venv", "bin", "python"), Source: dir,
		Env: l.Env, ComfyArgs: l.Options.ComfyArgs, Digest: realize.LockDigest(l),
	}
	if !l.Options.SkipModels {
		for _, lm := range l.Models {
			t, err := spec.ParseTarget(lm.TargetPath)
			switch {
			case err != nil:
			case t.Root == spec.ComfyRoot:
				b.Models = append(b.Models, filepath.Join(dir, filepath.FromSlash(t.Rel)))
			case m.cfg.ModelsDir != "":
				b.Models = append(b.Models, filepath.Join(m.cfg.ModelsDir, filepath.FromSlash(t.Rel)))
			}
		}
	}
	return b
}

// preparedCache remembers realized versions with the stat data of the
// files that decide them.
type preparedCache struct {
	mu      sync.Mutex
	entries map[string]preparedEntry
}

type preparedEntry struct {
	build *Build
	files []string
	stats []string
}

func statKey(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	key := fmt.Sprintf("%d/%d/%v", st.Size(), st.ModTime().UnixNano(), st.Mode())
	// A symbolic link replaced by rename (the version's pointer switched
	// to another build) is a new link, whatever its target's stat says.
	if lst, err := os.Lstat(path); err == nil && lst.Mode()&os.ModeSymlink != 0 {
		if sys, ok := lst.Sys().(*syscall.Stat_t); ok {
			key += fmt.Sprintf("|%d/%d", sys.Ino, lst.ModTime().UnixNano())
		}
	}
	return key
}

func (c *preparedCache) get(id string) *Build {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	for i, f := range e.files {
		if k := statKey(f); k == "" || k != e.stats[i] {
			return nil
		}
	}
	return e.build
}

func (c *preparedCache) put(id string, b *Build, files ...string) {
	e := preparedEntry{build: b, files: files}
	for _, f := range files {
		e.stats = append(e.stats, statKey(f))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]preparedEntry{}
	}
	c.entries[id] = e
}
