package realize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/pyenv"
)

// protected are the build's own entries that a core export never
// replaces or removes.
var protected = map[string]bool{
	pyenv.VenvDirName: true, "custom_nodes": true, MarkerFile: true,
	"extra_model_paths.yaml": true, ".core-staging": true,
}

// core exports ComfyUI at the locked commit into the build's top level.
// The tree goes to a staging directory first; each top-level entry is then
// renamed into place, so no file is ever half-written at its final path,
// and entries of an older core that the new one lacks are removed.
func (r *run) core(ctx context.Context) (string, error) {
	want := r.lock.Comfy.Commit
	if r.marker.Core == want && exists(r.path("main.py")) {
		return "", nil
	}
	if r.cfg.Trees == nil {
		return "", errNoTrees
	}
	staging := r.path(".core-staging")
	os.RemoveAll(staging)
	if err := r.cfg.Trees.Tree(ctx, r.lock.Comfy.FetchURL(), r.lock.Comfy.Ref, want, staging); err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	entries, err := os.ReadDir(staging)
	if err != nil {
		return "", err
	}
	// The build is between cores until this step ends.
	if err := r.set(func(m *Marker) { m.Core = "" }); err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if name == "custom_nodes" {
			// ComfyUI ships examples there; the folder itself is ours.
			if err := mergeDir(filepath.Join(staging, name), r.path(name)); err != nil {
				return "", err
			}
			continue
		}
		if protected[name] {
			continue
		}
		if err := os.RemoveAll(r.path(name)); err != nil {
			return "", err
		}
		if err := os.Rename(filepath.Join(staging, name), r.path(name)); err != nil {
			return "", err
		}
		names = append(names, name)
	}
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	for _, old := range r.marker.CoreEntries {
		if !keep[old] && !protected[old] {
			os.RemoveAll(r.path(old))
		}
	}
	sort.Strings(names)
	if err := fsutil.SyncDir(r.dir); err != nil {
		return "", err
	}
	return "ComfyUI at " + short(want), r.set(func(m *Marker) { m.Core, m.CoreEntries = want, names })
}

// mergeDir moves the files of src into dst without touching what dst
// already holds under other names (the custom node folders).
func mergeDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue // a node folder name could collide; examples are files
		}
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// nodes exports each custom node whose commit changed, in parallel, and
// removes node folders the lock no longer lists.
func (r *run) nodes(ctx context.Context) (string, error) {
	if err := os.MkdirAll(r.path("custom_nodes"), 0o755); err != nil {
		return "", err
	}
	want := map[string]bool{}
	var todo []int
	for i, n := range r.lock.CustomNodes {
		want[n.Dir] = true
		if r.marker.Nodes[n.Dir] != n.Commit || !exists(r.path("custom_nodes", n.Dir)) {
			todo = append(todo, i)
		}
	}
	var removed []string
	for dir := range r.marker.Nodes {
		if !want[dir] {
			if err := os.RemoveAll(r.path("custom_nodes", dir)); err != nil {
				return "", err
			}
			r.mu.Lock()
			delete(r.marker.Nodes, dir)
			r.mu.Unlock()
			removed = append(removed, dir)
		}
	}
	if len(todo) == 0 && len(removed) == 0 {
		return "", nil
	}
	if len(todo) > 0 && r.cfg.Trees == nil {
		return "", errNoTrees
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, r.cfg.Jobs)
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for k, i := range todo {
		n := r.lock.CustomNodes[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[k] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if err := r.cfg.Trees.Tree(ctx, n.Repo.FetchURL(), n.Ref, n.Commit, r.path("custom_nodes", n.Dir)); err != nil {
				errs[k] = fmt.Errorf("custom node %s: %w", n.Name, err)
				cancel()
				return
			}
			r.mu.Lock()
			r.marker.Nodes[n.Dir] = n.Commit
			r.mu.Unlock()
			if err := r.saveMarker(); err != nil {
				errs[k] = err
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(nonCancel(errs)...); err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%d exported", len(todo))
	if len(removed) > 0 {
		detail += fmt.Sprintf(", %d removed (%s)", len(removed), strings.Join(removed, ", "))
	}
	return detail, nil
}

// nonCancel drops the cancellations caused by a sibling's failure, so the
// error names the node that failed.
func nonCancel(errs []error) []error {
	var real []error
	for _, e := range errs {
		if e != nil && !errors.Is(e, context.Canceled) {
			real = append(real, e)
		}
	}
	if len(real) == 0 {
		return errs
	}
	return real
}

// pythonPlan is the one resolution: ComfyUI's requirements, every node's
// that opted in, and python_packages.
func (r *run) pythonPlan() pyenv.Plan {
	var p pyenv.Plan
	if core := r.path("requirements.txt"); exists(core) {
		p.CoreRequirements = core
	}
	for _, n := range r.lock.CustomNodes {
		req := r.path("custom_nodes", n.Dir, "requirements.txt")
		if n.InstallRequirements && exists(req) {
			p.Nodes = append(p.Nodes, pyenv.NodeRequirements{Name: n.Name, Path: req})
		}
	}
	p.Packages = r.lock.FetchPackages()
	return p
}

func (r *run) newInstaller() *pyenv.Installer {
	pc := r.cfg.Python
	pc.Python = r.lock.Options.PythonOrDefault()
	pc.SystemSitePackages = r.lock.Options.SystemSitePackages
	pc.WithoutPip = r.lock.Options.SkipPython
	pc.Prompt = "comfy-" + r.lock.VersionID
	pc.Logger = r.cfg.Logger
	if pc.Progress == nil {
		pc.Progress = r.cfg.Progress
	}
	return pyenv.New(pc)
}

// venv makes sure the build's venv exists; it runs alongside the trees and
// downloads, as creating a venv takes seconds.
func (r *run) venv(ctx context.Context) (string, error) {
	if r.installer == nil {
		r.installer = r.newInstaller()
	}
	venv, err := r.installer.EnsureVenv(ctx, r.dir)
	if err != nil {
		return "", err
	}
	r.venvReady = venv
	return "", nil
}

func (r *run) python(ctx context.Context) (string, error) {
	in, venv := r.installer, r.venvReady
	if r.lock.Options.SkipPython {
		return r.skipPython(venv)
	}
	plan := r.pythonPlan()
	digest, err := in.PlanDigest(plan, venv)
	if err != nil {
		return "", err
	}
	// A node's new commit can change what its install needs beyond its
	// requirements file, so a participating node's commit is an input too.
	h := sha256.New()
	h.Write([]byte(digest))
	for _, n := range r.lock.CustomNodes {
		if n.InstallRequirements {
			fmt.Fprintf(h, "\n%s %s", n.Dir, n.Commit)
		}
	}
	digest = hex.EncodeToString(h.Sum(nil))
	if digest == r.marker.Python && !venv.Created {
		return "", r.set(func(m *Marker) { m.PythonInputs = pythonInputs(r.lock) })
	}
	// A failed install must be retried next run.
	if err := r.set(func(m *Marker) { m.Python = "" }); err != nil {
		return "", err
	}
	if !plan.Empty() {
		if err := in.Install(ctx, venv.Dir, plan); err != nil {
			return "", err
		}
	}
	freeze, err := in.Freeze(ctx, venv.Dir)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d packages with python %s", len(freeze), venv.Interpreter.Version), r.set(func(m *Marker) {
		m.Python, m.PythonFreeze, m.Interpreter = digest, freeze, venv.Interpreter.Version
		m.PythonInputs = pythonInputs(r.lock)
	})
}

// skipPython is the Python step of options.skip_python: the venv (made
// without pip, seeing the interpreter's packages) is all there is; no
// requirement file is read and no pip runs, so no index is needed.
func (r *run) skipPython(venv *pyenv.Venv) (string, error) {
	digest := "skip " + venv.ID
	if digest == r.marker.Python && !venv.Created {
		return "", r.set(func(m *Marker) { m.PythonInputs = pythonInputs(r.lock) })
	}
	return fmt.Sprintf("skipped (skip_python): python %s with its own packages", venv.Interpreter.Version), r.set(func(m *Marker) {
		m.Python, m.PythonFreeze, m.Interpreter = digest, nil, venv.Interpreter.Version
		m.PythonInputs = pythonInputs(r.lock)
	})
}

// extraModelPathsFor is extra_model_paths.yaml for a build at dir.
func (r *run) extraModelPathsFor(dir string) string {
	models := r.cfg.ModelsDir
	if models == "" {
		models = filepath.Join(dir, "models")
	}
	return ExtraModelPaths(dir, models, r.lock)
}

func (r *run) extraModelPathsDigestFor(dir string) string {
	sum := sha256.Sum256([]byte(r.extraModelPathsFor(dir)))
	return hex.EncodeToString(sum[:])
}

// extraModelPathsDigest is the digest of the file this build should have.
func (r *run) extraModelPathsDigest() string { return r.extraModelPathsDigestFor(r.dir) }

func (r *run) extraModelPaths(ctx context.Context) (string, error) {
	content := r.extraModelPathsFor(r.dir)
	sum := sha256.Sum256([]byte(content))
	digest := hex.EncodeToString(sum[:])
	p := r.path("extra_model_paths.yaml")
	if digest == r.marker.ExtraModelPaths && exists(p) {
		return "", nil
	}
	if err := fsutil.WriteFileAtomic(p, []byte(content), 0o644); err != nil {
		return "", err
	}
	return "written", r.set(func(m *Marker) { m.ExtraModelPaths = digest })
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
