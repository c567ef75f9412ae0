package gitsrc

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/cache"
)

// PruneOptions tune Prune.
type PruneOptions struct {
	// MinAge spares repositories fetched into more recently.
	MinAge time.Duration
	DryRun bool
	Now    time.Time // zero: time.Now()
	// Locks skip a repository another process on this host is fetching
	// into.
	Locks cache.Locks
}

// PrunedRepo is one repository removed (or that a dry run would remove).
type PrunedRepo struct {
	Key  string `json:"key"`
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// PruneReport says what Prune did.
type PruneReport struct {
	Removed []PrunedRepo `json:"removed"`
	Kept    int          `json:"kept"`
	Recent  int          `json:"recent"`
	Busy    int          `json:"busy"`
}

// Prune removes the cache repositories under cacheDir whose key (RepoKey)
// is not in keep and that nothing fetched into for MinAge. A repository is
// removed under its fetch lock, renamed aside first so no reader ever sees
// half of it; a later realize that needs it fetches it again.
func Prune(ctx context.Context, cacheDir string, keep map[string]bool, o PruneOptions) (PruneReport, error) {
	var rep PruneReport
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	var repos []string
	err := filepath.WalkDir(cacheDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			switch {
			case p == cacheDir && os.IsNotExist(err):
				return filepath.SkipAll
			case os.IsNotExist(err):
				return nil // a fetch's private repository, published or removed meanwhile
			}
			return err
		}
		if d.IsDir() && p != cacheDir && privateName(d.Name()) {
			return filepath.SkipDir // being fetched into, or on its way out
		}
		if d.IsDir() && strings.HasSuffix(p, ".git") && isDir(filepath.Join(p, "objects")) {
			repos = append(repos, p)
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("prune git cache: %w", err)
	}
	for _, dir := range repos {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rel, _ := filepath.Rel(cacheDir, dir)
		key := strings.TrimSuffix(filepath.ToSlash(rel), ".git")
		switch {
		case keep[key]:
			rep.Kept++
			continue
		case o.Now.Sub(lastFetch(dir)) < o.MinAge:
			rep.Recent++
			continue
		}
		item := PrunedRepo{Key: key, Path: dir, Size: dirSize(dir)}
		if !o.DryRun {
			removed, err := removeRepo(dir, o.Locks)
			if err != nil {
				return rep, err
			}
			if !removed {
				rep.Busy++
				continue
			}
		}
		rep.Removed = append(rep.Removed, item)
	}
	return rep, nil
}

// privateName matches the private and aside directories made next to a
// repository (see tempSibling).
func privateName(name string) bool {
	for _, kind := range []string{".git.tmp-", ".git.old-", ".git.pruned-"} {
		if strings.Contains(name, kind) {
			return true
		}
	}
	return false
}

// removeRepo removes dir if its fetch lock is free; false when it is held.
func removeRepo(dir string, locks cache.Locks) (bool, error) {
	unlock, ok, err := locks.TryLock(dir + ".lock")
	if err != nil || !ok {
		return false, nil
	}
	defer unlock()
	aside := dir + ".pruned-" + fsutil.Random()
	if err := os.Rename(dir, aside); err != nil {
		return false, fmt.Errorf("prune %s: %w", dir, err)
	}
	if err := os.RemoveAll(aside); err != nil {
		return false, fmt.Errorf("prune %s: %w", dir, err)
	}
	return true, nil
}

// lastFetch is when a fetch last wrote to the repository: fetches add
// packs and pin refs, which change these directories' times.
func lastFetch(dir string) time.Time {
	var t time.Time
	for _, p := range []string{dir, filepath.Join(dir, "objects", "pack"), filepath.Join(dir, "refs", "pins"), filepath.Join(dir, "shallow")} {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
