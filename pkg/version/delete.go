package version

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// InputError is a request refused before anything changed, because of
// what the caller asked (a path that is not a build, a --build that is not
// a directory): the caller's to fix, exit code 2 in the CLI.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Removal is one thing Delete looked at.
type Removal struct {
	What    string // "build", "lock" or "spec"
	Path    string
	Removed bool // false: it was absent
}

// DeleteOptions tune Delete.
type DeleteOptions struct {
	// Explicit is set when the build directory was named by the user
	// (--target): it may lie outside the builds root.
	Explicit bool
	// RemoveSpec removes versions/<id>.json too.
	RemoveSpec bool
}

// Delete removes id's build and lock (and its spec when asked). It refuses
// anything that is not id's build, and waits for a realize of the build to
// finish rather than pull the tree from under it.
func (m *Manager) Delete(ctx context.Context, id string, opts DeleteOptions) ([]Removal, error) {
	if !spec.ValidID(id) {
		return nil, &spec.Error{Msg: fmt.Sprintf("invalid version id %q", id)}
	}
	dir := m.BuildDir(id)
	if err := m.checkDeletable(dir, opts.Explicit); err != nil {
		return nil, err
	}
	if err := checkBuildOf(dir, id, dir == m.defaultBuildDir(id)); err != nil {
		return nil, err
	}
	fl := flock.New(realize.BuildLockPath(dir))
	if _, err := fl.TryLockContext(ctx, 250*time.Millisecond); err == nil {
		defer fl.Unlock()
	}
	var out []Removal
	removed, err := realize.RemoveVersion(dir)
	if err != nil {
		return out, fmt.Errorf("delete %s: build %s: %w", id, dir, err)
	}
	out = append(out, Removal{"build", dir, removed})
	os.Remove(realize.BuildLockPath(dir)) // the build's lock file beside it
	removed, err = removeIfExists(m.LockPath(id))
	if err != nil {
		return out, fmt.Errorf("delete %s: lock: %w", id, err)
	}
	out = append(out, Removal{"lock", m.LockPath(id), removed})
	if opts.RemoveSpec {
		p, err := m.Find(id)
		if err != nil {
			return out, err
		}
		if err := os.Remove(p); err != nil {
			return out, fmt.Errorf("delete %s: spec: %w", id, err)
		}
		out = append(out, Removal{"spec", p, true})
	}
	for _, r := range out {
		if r.Removed {
			return out, nil
		}
	}
	// As `docker rm` and `kubectl delete` do: deleting what is not there
	// is an error, so a misspelt id does not look like success.
	return out, fmt.Errorf("delete %s: nothing to delete: there is no build at %s and no lock", id, dir)
}

// checkBuildOf refuses to delete a directory that is not id's build: one
// that holds another version (COMFY_HOME is one directory for every id),
// or, away from id's own place in the builds root, a non-empty one the
// worker did not make.
func checkBuildOf(dir, id string, ownPlace bool) error {
	b, err := os.ReadFile(filepath.Join(dir, realize.MarkerFile))
	if errors.Is(err, os.ErrNotExist) {
		entries, derr := os.ReadDir(dir)
		if !ownPlace && derr == nil && len(entries) > 0 {
			return fmt.Errorf("delete %s: %s was not made by the worker (no %s); nothing was removed", id, dir, realize.MarkerFile)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	var mk struct {
		VersionID string `json:"version_id"`
	}
	if json.Unmarshal(b, &mk) == nil && mk.VersionID != "" && mk.VersionID != id {
		return fmt.Errorf("delete %s: %s holds version %s, not %s; nothing was removed", id, dir, mk.VersionID, id)
	}
	return nil
}

// checkDeletable refuses to remove anything but a build directory: a path
// outside the builds root needs an explicit --target, and even then never
// a filesystem root, a home, or a cache/builds root itself.
func (m *Manager) checkDeletable(dir string, explicit bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	buildsRoot, _ := filepath.Abs(m.cfg.BuildsRoot)
	cacheRoot, _ := filepath.Abs(m.cfg.CacheRoot)
	home, _ := os.UserHomeDir()
	for _, forbidden := range []string{"/", home, buildsRoot, cacheRoot, filepath.Dir(buildsRoot), m.cfg.ModelsDir} {
		if forbidden != "" && abs == filepath.Clean(forbidden) {
			return &InputError{fmt.Sprintf("refusing to delete %s: it is not a build directory", abs)}
		}
	}
	if strings.HasPrefix(cacheRoot+"/", abs+"/") {
		return &InputError{fmt.Sprintf("refusing to delete %s: it contains the shared cache %s", abs, cacheRoot)}
	}
	inside := strings.HasPrefix(abs, buildsRoot+string(filepath.Separator))
	if !inside && !explicit {
		return &InputError{fmt.Sprintf("refusing to delete %s: it is outside the builds root %s; pass it as --target to delete it anyway", abs, buildsRoot)}
	}
	return nil
}

func removeIfExists(p string) (bool, error) {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return true, os.RemoveAll(p)
}
