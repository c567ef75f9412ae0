package realize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/pyenv"
)

// A version's builds under the builds root, shared by workers on every host
// that mounts the volume (see docs/operations.md):
//
//	comfy-<id> -> comfy-<id>.builds/<key>   the pointer: a relative symlink
//	comfy-<id>.builds/<key>/                immutable builds
//	comfy-<id>.builds/.stage-<random>/      builds being made, one per realize
//	comfy-<id>.builds/.old-<random>/        builds moved aside
//
// A build is made in a private stage: hard links to the current build (a
// clone costs no data; every step replaces files by renames, never writes
// into one), then the usual incremental steps, each recorded in the stage's
// marker. The finished stage is renamed to its key, which digests what it
// holds; when another host published the same key first, its build is
// used and the stage dropped. Then the pointer is replaced by a new link
// renamed over it. A worker runs ComfyUI from the concrete directory
// (Result.BuildDir), so a later switch never changes files under it.
//
// A realize keeps its stage's modification time fresh (a lease). One that
// fails marks its stage abandoned; one killed stops refreshing it. The next
// realize, on any host, takes an abandoned stage over by renaming it to its
// own name and continues from its marker.

const (
	storeSuffix = ".builds"
	stagePrefix = ".stage-"
	asidePrefix = ".old-"
	// touchEvery bounds how often the lease of a build in use is written.
	touchEvery = time.Minute
)

// errStageTaken is the cause a realize stops with when another process,
// taking it for dead, took its stage over.
var errStageTaken = errors.New("another process took over this build's stage")

// StoreDir is the directory of the immutable builds of the version whose
// pointer is pointer (<builds>/comfy-<id>).
func StoreDir(pointer string) string { return filepath.Clean(pointer) + storeSuffix }

// Current resolves a version's pointer to the build it points to ("" when
// there is none, or its target is gone). legacy is set when pointer is a
// directory: a build made in place by an earlier release (or anything
// else someone put there).
func Current(pointer string) (dir string, legacy bool, err error) {
	fi, err := os.Lstat(pointer)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, err
	case fi.IsDir():
		return pointer, true, nil
	case fi.Mode()&fs.ModeSymlink == 0:
		return "", false, fmt.Errorf("%s is a file, not a build or a link to one: move it away", pointer)
	}
	target, err := os.Readlink(pointer)
	if err != nil {
		return "", false, err
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(pointer), target)
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		return "", false, nil
	}
	return target, false, nil
}

// Touch refreshes the lease of the build at dir, its modification time, at
// most once a minute. A worker calls it for every job it runs from dir, so
// gc on any host leaves a build in use alone.
func Touch(dir string) { _ = fsutil.TouchIfOlder(dir, touchEvery) }

// realizeVersioned brings the version's pointer (cfg.BuildDir) to a
// complete immutable build for l.
func realizeVersioned(ctx context.Context, cfg Config, l *lock.Lock) (*Result, error) {
	pointer, store := cfg.BuildDir, StoreDir(cfg.BuildDir)
	cur, legacy, err := Current(pointer)
	if err != nil {
		return nil, fmt.Errorf("realize: %w", err)
	}
	if legacy && !exists(filepath.Join(cur, MarkerFile)) {
		// Not an earlier release's build: empty, leftovers of a realize
		// killed while writing its first marker (removed), or a user's.
		if err := claim(cur); err != nil {
			return nil, err
		}
		if err := os.Remove(cur); err != nil {
			return nil, fmt.Errorf("realize: %w", err)
		}
		cur, legacy = "", false
	}
	r := newRun(cfg, l, cur)
	if cur != "" {
		if r.marker, err = ReadMarker(cur, l.VersionID); err != nil {
			return nil, err
		}
	}
	if r.learnFromMarker() && cfg.SaveLock != nil {
		if err := cfg.SaveLock(l); err != nil {
			return nil, fmt.Errorf("realize: record model digests in the lock: %w", err)
		}
	}
	if cur != "" && !legacy && r.upToDate() {
		Touch(cur)
		r.res.NoOp = true
		return r.res, nil
	}
	r.installer = r.newInstaller()
	interp, err := r.installer.Interpreter(ctx)
	if err != nil {
		return nil, &Error{Step: "python", Err: err}
	}
	// A complete build for these inputs may exist already: another host's,
	// published while this one waited, or an earlier one (an edit undone).
	key := r.buildKey(store, interp)
	if dir := filepath.Join(store, key); r.completeAt(dir) {
		if err := switchTo(cfg, pointer, key); err != nil {
			return nil, fmt.Errorf("realize: %w", err)
		}
		Touch(dir)
		r.res.BuildDir = dir
		r.res.Steps = append(r.res.Steps, Step{Name: "build", Action: "done", Detail: "switched to the existing build " + key})
		cfg.Logger.Info().Str("step", "build").Str("action", "done").Str("build", dir).Msg("realize: switched to an existing build")
		return r.res, nil
	}

	stage, err := newStage(ctx, cfg, store, cur)
	if err != nil {
		return nil, fmt.Errorf("realize: %w", err)
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := fsutil.Heartbeat(sctx, stage, cfg.Lease.Refresh, func() { cancel(errStageTaken) })
	r.dir = stage
	if r.marker, err = ReadMarker(stage, l.VersionID); err != nil {
		stop()
		return nil, err
	}
	r.marker.VersionID = l.VersionID
	removeLeftovers(stage) // of a realize that died in this stage before
	err = r.build(sctx)
	if err == nil {
		// Digests learned on download are part of the key.
		key = r.buildKey(store, interp)
		err = r.complete(key)
	}
	stop()
	if context.Cause(sctx) == errStageTaken {
		return nil, errStageTaken
	}
	if err != nil {
		// The next realize, here or on another host, continues it at once.
		_ = fsutil.MarkAbandoned(stage)
		r.res.BuildDir = ""
		return r.res, err
	}
	final, err := publishBuild(r, store, stage, key)
	if err != nil {
		_ = fsutil.MarkAbandoned(stage)
		return nil, fmt.Errorf("realize: %w", err)
	}
	if err := switchTo(cfg, pointer, key); err != nil {
		return nil, fmt.Errorf("realize: %w", err)
	}
	Touch(final)
	r.res.BuildDir = final
	return r.res, nil
}

// buildKey names the immutable build of r's lock: a digest of what is on
// disk, the interpreter its venv is made from, and the models directory
// as the build sees it (extra_model_paths.yaml).
func (r *run) buildKey(store string, interp pyenv.Interpreter) string {
	h := sha256.New()
	fmt.Fprintf(h, "disk %s\nskip-models %v\ninterpreter %s %s %s\nextra-model-paths %s\n", DiskDigest(r.lock), r.skipModels(),
		interp.Executable, interp.Version, interp.Tag, r.extraModelPathsDigestFor(filepath.Join(store, "build")))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// completeAt reports whether dir holds a complete build for r's lock.
func (r *run) completeAt(dir string) bool {
	m, err := ReadMarker(dir, r.lock.VersionID)
	if err != nil || !exists(filepath.Join(dir, MarkerFile)) {
		return false
	}
	c := newRun(r.cfg, r.lock, dir)
	c.marker = m
	return c.upToDate()
}

// newStage returns a private stage to make the build in: an abandoned one
// taken over (the most recent), else a clone of cur, else an empty one.
func newStage(ctx context.Context, cfg Config, store, cur string) (string, error) {
	if err := os.MkdirAll(store, 0o755); err != nil {
		return "", err
	}
	mine := filepath.Join(store, stagePrefix+fsutil.Random())
	for _, old := range abandonedStages(store, cfg.Lease.Expiry) {
		if err := os.Rename(old, mine); err != nil {
			continue // taken by another process first
		}
		_ = fsutil.Touch(mine)
		cfg.Logger.Info().Str("stage", mine).Msg("continuing an interrupted realize")
		return mine, nil
	}
	if cur == "" {
		return mine, os.Mkdir(mine, 0o755)
	}
	if err := fsutil.CloneTree(ctx, cur, mine, nil); err != nil {
		_ = os.RemoveAll(mine)
		return "", fmt.Errorf("start the new build from %s: %w", cur, err)
	}
	return mine, nil
}

// abandonedStages lists the stages in store whose lease expired, most
// recently touched first.
func abandonedStages(store string, expiry time.Duration) []string {
	entries, err := os.ReadDir(store)
	if err != nil {
		return nil
	}
	type stage struct {
		path  string
		mtime time.Time
	}
	now := time.Now()
	var found []stage
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagePrefix) {
			continue
		}
		p := filepath.Join(store, e.Name())
		if fi, err := e.Info(); err == nil && fsutil.Abandoned(p, expiry, now) {
			found = append(found, stage{p, fi.ModTime()})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].mtime.After(found[j].mtime) })
	out := make([]string, len(found))
	for i, s := range found {
		out[i] = s.path
	}
	return out
}

// publishBuild renames the finished stage to its key. When another process
// published that key first, its build is used and the stage dropped; a
// damaged build under the key is moved aside and replaced.
func publishBuild(r *run, store, stage, key string) (string, error) {
	final := filepath.Join(store, key)
	for range 2 {
		err := os.Rename(stage, final)
		if err == nil {
			return final, fsutil.SyncDir(store)
		}
		if !exists(final) {
			return "", fmt.Errorf("publish the build: %w", err)
		}
		if r.completeAt(final) {
			r.cfg.Logger.Info().Str("build", final).Msg("another process published this build first; using it")
			if err := os.RemoveAll(stage); err != nil {
				r.cfg.Logger.Warn().Err(err).Str("stage", stage).Msg("could not remove the build made in vain")
			}
			return final, nil
		}
		r.cfg.Logger.Warn().Str("build", final).Msg("the build in place is damaged; replacing it")
		if err := os.Rename(final, filepath.Join(store, asidePrefix+fsutil.Random())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("move the damaged build aside: %w", err)
		}
	}
	return "", fmt.Errorf("publish the build: %s keeps changing under this realize", final)
}

// switchTo points the version's pointer at the build key: a new relative
// link under a private name, renamed over the old one. A directory there
// (an earlier release's build) is moved into the store first.
func switchTo(cfg Config, pointer, key string) error {
	target := filepath.Base(StoreDir(pointer)) + "/" + key
	if got, err := os.Readlink(pointer); err == nil && got == target {
		return nil
	}
	tmp := fsutil.TempPath(pointer)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("switch to the new build: %w", err)
	}
	err := os.Rename(tmp, pointer)
	if fi, lerr := os.Lstat(pointer); err != nil && lerr == nil && fi.IsDir() {
		aside := filepath.Join(StoreDir(pointer), asidePrefix+fsutil.Random())
		if merr := os.Rename(pointer, aside); merr == nil {
			cfg.Logger.Info().Str("from", pointer).Str("to", aside).Msg("moved the build of an earlier release aside; gc removes it later")
		}
		err = os.Rename(tmp, pointer)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("switch to the new build: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(pointer))
}

// RemoveVersion deletes a version's builds: its pointer (or the build an
// earlier release made there) and its store. It reports whether there was
// anything to delete.
func RemoveVersion(pointer string) (bool, error) {
	removed := false
	for _, p := range []string{pointer, StoreDir(pointer)} {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		removed = true
		// A private name first: no reader finds half of it.
		aside := fsutil.TempPath(p)
		if err := os.Rename(p, aside); err != nil {
			return removed, err
		}
		if err := os.RemoveAll(aside); err != nil {
			return removed, err
		}
	}
	return removed, nil
}
