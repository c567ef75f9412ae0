// Package realize turns a lock into a runnable ComfyUI build on disk: core
// tree, custom node trees, Python environment, models and
// extra_model_paths.yaml, each step recorded in a marker with the digest of
// its inputs. A re-run redoes only what changed or failed; a complete build
// is recognised from stat data without reading a model file.
//
// Builds are immutable once in place and shared by workers on many hosts
// that trust no lock between them: a realize makes a new build in a private
// stage beside the current one and publishes it by a rename, then switches
// the version's pointer to it (see builds.go). A lock per version only
// makes realizes on one host take turns.
package realize

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/pyenv"
)

// Trees puts the tree of a commit at dest, fetching it into the shared git
// cache first when needed, and replacing dest atomically.
type Trees interface {
	Tree(ctx context.Context, url, ref, commit, dest string) error
}

// Config says where and how to realize.
type Config struct {
	BuildDir  string
	ModelsDir string
	// Jobs bounds parallel git fetches and model downloads.
	Jobs int
	// SkipModels leaves models out (options.skip_models or a flag).
	SkipModels bool
	Trees      Trees
	Models     *models.Store
	// Python is the pyenv configuration; realize sets the interpreter and
	// system site packages from the lock's options.
	Python   pyenv.Config
	Logger   zerolog.Logger
	Progress progress.Func
	// SaveLock persists the lock after model digests were learned on
	// first download (trust on first use). May be nil.
	SaveLock func(*lock.Lock) error
	// Locks serialise realizes of one build on one host (an optimisation:
	// across hosts the build protocol needs none).
	Locks cache.Locks
	// Lease times the stages of builds being made; zero fields take
	// cache.DefaultLease.
	Lease cache.Lease
	// InPlace realizes BuildDir itself, step by step (an explicit --target
	// or COMFY_HOME), instead of immutable builds that BuildDir points to.
	InPlace bool
}

// Result reports what a realize did.
type Result struct {
	// BuildDir is the build to run ComfyUI from: the concrete immutable
	// directory (never the version's pointer, which a later realize may
	// switch), or the in-place directory. Callers keep it for as long as
	// they run from it.
	BuildDir string `json:"build_dir"`
	// NoOp is set when the build was already complete for this lock.
	NoOp  bool   `json:"no_op"`
	Steps []Step `json:"steps"`
}

// Step is one step's outcome: Action is "kept" or "done".
type Step struct {
	Name   string        `json:"name"`
	Action string        `json:"action"`
	Detail string        `json:"detail,omitempty"`
	Took   time.Duration `json:"-"`
}

// MarshalJSON gives the step's time in milliseconds, under a key that says
// so, like every duration the worker prints.
func (s Step) MarshalJSON() ([]byte, error) {
	type plain Step
	return json.Marshal(struct {
		plain
		TookMS int64 `json:"took_ms"`
	}{plain(s), s.Took.Milliseconds()})
}

// Error is a failed step; the marker keeps the steps that completed.
type Error struct {
	Step string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("realize: %s: %v", e.Step, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// BuildLockPath is the lock file serialising work on one build, beside it
// on the same volume.
func BuildLockPath(buildDir string) string {
	return filepath.Clean(buildDir) + ".lock"
}

// Realize brings the version's build to the state l describes and returns
// the build directory to run: a concrete, immutable build (see builds.go),
// or cfg.BuildDir itself with InPlace.
func Realize(ctx context.Context, cfg Config, l *lock.Lock) (*Result, error) {
	if cfg.Jobs <= 0 {
		cfg.Jobs = 4
	}
	cfg.Lease = cfg.Lease.OrDefault()
	build, err := filepath.Abs(cfg.BuildDir)
	if err != nil {
		return nil, err
	}
	cfg.BuildDir = build
	if err := os.MkdirAll(filepath.Dir(build), 0o755); err != nil {
		return nil, fmt.Errorf("realize: builds root: %w", err)
	}
	unlock, err := cfg.Locks.Lock(ctx, BuildLockPath(build), func() {
		cfg.Logger.Info().Str("build", build).Msg("another process is realizing this build; waiting for it")
	})
	if err != nil {
		return nil, fmt.Errorf("realize: wait for the build lock: %w", err)
	}
	defer unlock()
	if cfg.InPlace {
		return realizeInPlace(ctx, cfg, l)
	}
	res, err := realizeVersioned(ctx, cfg, l)
	if errors.Is(err, errStageTaken) && ctx.Err() == nil {
		// A process that took this one for dead took its stage over:
		// start again with a new one.
		cfg.Logger.Warn().Str("build", build).Msg("another process took over this realize's stage; realizing again")
		res, err = realizeVersioned(ctx, cfg, l)
	}
	return res, err
}

// realizeInPlace brings cfg.BuildDir itself to l's state, step by step, as
// earlier releases did: for a --target or COMFY_HOME directory, which one
// machine owns.
func realizeInPlace(ctx context.Context, cfg Config, l *lock.Lock) (*Result, error) {
	build := cfg.BuildDir
	r := newRun(cfg, l, build)
	var err error
	if r.marker, err = ReadMarker(build, l.VersionID); err != nil {
		return nil, err
	}
	if r.learnFromMarker() && cfg.SaveLock != nil {
		if err := cfg.SaveLock(l); err != nil {
			return nil, fmt.Errorf("realize: record model digests in the lock: %w", err)
		}
	}
	if r.upToDate() {
		r.res.NoOp = true
		return r.res, nil
	}
	if err := claim(build); err != nil {
		return nil, err
	}
	cfg.Logger.Warn().Str("build", build).Msg("realizing in place (--target or COMFY_HOME): ComfyUI must not run from this directory " +
		"meanwhile, and workers on other hosts must not realize it; leave both unset to get immutable builds under the builds root")
	// A directory shared by versions (COMFY_HOME) now holds this one; what
	// the marker says of trees and models on disk stays true.
	r.marker.VersionID = l.VersionID
	removeLeftovers(build) // this host's lock keeps other writers away
	if err := r.build(ctx); err != nil {
		return r.res, err
	}
	return r.res, r.complete("")
}

// build runs the steps in r.dir, recording each in its marker, which is
// saved incomplete first.
func (r *run) build(ctx context.Context) error {
	r.marker.Complete = false
	if err := r.saveMarker(); err != nil {
		return err
	}
	// Trees, models and the venv do not depend on each other: they run
	// together (downloads overlap git fetches and venv creation), and one
	// failing does not stop the others, so a re-run redoes only what
	// failed. The Python install needs the trees and the venv.
	errs := r.phase(ctx, []step{{name: "core", fn: r.core}, {name: "custom_nodes", fn: r.nodes}, {name: "python", fn: r.venv, quiet: true}, {name: "models", fn: r.fetchShared}})
	if errs[0] == nil && errs[1] == nil && errs[2] == nil {
		errs = append(errs, r.phase(ctx, []step{{name: "python", fn: r.python}, {name: "models", fn: r.placeInBuild, quiet: true}})...)
	}
	errs = append(errs, r.phase(ctx, []step{{name: "extra_model_paths", fn: r.extraModelPaths}})...)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// complete marks the build in r.dir complete for r.lock (under key, for
// an immutable build) and saves the marker.
func (r *run) complete(key string) error {
	r.marker.Complete = true
	r.marker.LockDigest = LockDigest(r.lock)
	r.marker.DiskDigest = DiskDigest(r.lock)
	r.marker.BuildKey = key
	return r.saveMarker()
}

// claim makes sure build is the worker's to change: missing (it is made),
// empty, holding a marker, or holding nothing but the worker's own
// leftovers (a realize killed while writing its first marker). A directory
// with other content is a user's (an existing ComfyUI install, say):
// realizing over it would delete the folders ComfyUI's tree also has,
// models/ and output/ among them.
func claim(build string) error {
	entries, err := os.ReadDir(build)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(build, 0o755); err != nil {
			return fmt.Errorf("realize: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("realize: %w", err)
	case exists(filepath.Join(build, MarkerFile)):
		return nil
	}
	for _, e := range entries {
		if !leftover(e.Name()) {
			return fmt.Errorf("realize: %s exists and was not made by the worker (no %s): realize into a new or empty directory (--target, COMFY_HOME) or move it away; nothing was changed", build, MarkerFile)
		}
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(build, e.Name())); err != nil {
			return fmt.Errorf("realize: remove a leftover of an interrupted realize: %w", err)
		}
	}
	return nil
}

// leftover reports whether a name in a build directory is a temp file of
// the worker's: a marker being written, an export's or a core's staging.
func leftover(name string) bool {
	return fsutil.IsTempName(name) || name == ".core-staging"
}

// removeLeftovers deletes the temp files that writers killed in the middle
// left at the top of dir, which the caller alone writes (a stage, or an
// in-place build under its lock).
func removeLeftovers(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if leftover(e.Name()) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// learnFromMarker copies into the lock the digests of models it has none
// for but the build's marker does: another process placed them (trust on
// first use) after this one read the lock. Without it, a realize that
// waited for that process would see a different lock and redo the build.
func (r *run) learnFromMarker() bool {
	if r.marker.VersionID != r.lock.VersionID {
		return false // a build dir shared by versions (COMFY_HOME)
	}
	learned := false
	for _, lm := range r.lock.Models {
		placed, ok := r.marker.Models[lm.TargetPath]
		// Only from the same sources: a model whose source changed is
		// another file, whatever was placed at its target before.
		if lm.SHA256 == "" && ok && placed.SHA256 != "" && sameSources(placed.Sources, modelSources(lm)) &&
			r.lock.RecordModel(lm.TargetPath, placed.SHA256, placed.Size) {
			learned = true
		}
	}
	return learned
}

// run is one realize in progress.
type run struct {
	cfg  Config
	lock *lock.Lock
	// dir is the build the steps work in: a stage of an immutable build,
	// or the in-place build directory.
	dir    string
	res    *Result
	mu     sync.Mutex // guards the marker, res and failed across parallel steps
	marker *Marker
	// failed are the targets whose fetch failed in this realize: not
	// fetched a second time by a later step.
	failed map[string]bool
	// venvReady is the build's venv, made by the venv step.
	venvReady *pyenv.Venv
	// blobs are the models the fetch step got, by target, for the link
	// step after the trees.
	blobs     map[string]models.Blob
	installer *pyenv.Installer
}

// step is a named piece of a realize.
type step struct {
	name string
	fn   func(context.Context) (string, error)
	// quiet steps are reported only when they did something (venv
	// creation is reported by the install, models inside the build by the
	// models step when nothing changed).
	quiet bool
}

// phase runs steps concurrently and returns each one's error (an *Error
// naming the step), in the order given. Quiet steps are reported only when
// they did something.
func (r *run) phase(ctx context.Context, steps []step) []error {
	done := make([]*Step, len(steps))
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			detail, err := s.fn(ctx)
			if err != nil {
				errs[i] = &Error{Step: s.name, Err: err}
				return
			}
			action := "done"
			if detail == "" {
				action, detail = "kept", "unchanged"
			}
			took := time.Since(start)
			done[i] = &Step{Name: s.name, Action: action, Detail: detail, Took: took}
		}()
	}
	wg.Wait()
	for i, st := range done {
		if st != nil && !(steps[i].quiet && st.Action == "kept") {
			r.res.Steps = append(r.res.Steps, *st)
			r.cfg.Logger.Info().Str("step", st.Name).Str("action", st.Action).Str("detail", st.Detail).Int64("took_ms", st.Took.Milliseconds()).Msg("realize")
		}
	}
	return errs
}

// set changes the marker under the lock and saves it.
func (r *run) set(change func(m *Marker)) error {
	r.mu.Lock()
	change(r.marker)
	r.mu.Unlock()
	return r.saveMarker()
}

func newRun(cfg Config, l *lock.Lock, dir string) *run {
	return &run{cfg: cfg, lock: l, dir: dir, res: &Result{BuildDir: dir}, blobs: map[string]models.Blob{},
		marker: newMarker(l.VersionID), failed: map[string]bool{}}
}

func (r *run) saveMarker() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.marker.write(r.dir); err != nil {
		return fmt.Errorf("realize: write marker: %w", err)
	}
	return nil
}

func (r *run) path(rel ...string) string {
	return filepath.Join(append([]string{r.dir}, rel...)...)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// upToDate is the fast path: the marker says complete for this very lock,
// and stat data confirms everything is still in place. No file is read.
func (r *run) upToDate() bool {
	m := r.marker
	if !m.Complete || !m.completeFor(r.lock) || m.Core != r.lock.Comfy.Commit {
		return false
	}
	if !exists(r.path("main.py")) || !exists(r.path("extra_model_paths.yaml")) || m.ExtraModelPaths != r.extraModelPathsDigest() {
		return false
	}
	// Stat, not Lstat: bin/python is a link to the base interpreter, which
	// a new image may no longer have (another Python version).
	if _, err := os.Stat(r.path(pyenv.VenvDirName, "bin", "python")); err != nil {
		return false
	}
	for _, n := range r.lock.CustomNodes {
		if m.Nodes[n.Dir] != n.Commit || !exists(r.path("custom_nodes", n.Dir)) {
			return false
		}
	}
	if r.skipModels() {
		return true
	}
	for _, lm := range r.lock.Models {
		placed, ok := m.Models[lm.TargetPath]
		if !ok {
			return false
		}
		p, err := r.linkPath(lm.TargetPath)
		if err != nil {
			return false
		}
		st, ok := statModel(p)
		if !ok || st.Size != placed.Size || st.ModTime != placed.ModTime {
			return false
		}
		if isShared(lm.TargetPath) {
			// The shared path is what ComfyUI loads: it must be this model.
			if shared, err := r.sharedPath(lm.TargetPath); err != nil || !sameFiles(shared, p) {
				return false
			}
		}
	}
	return true
}

func (r *run) skipModels() bool { return r.cfg.SkipModels || r.lock.Options.SkipModels }

var errNoTrees = errors.New("no git source configured")
