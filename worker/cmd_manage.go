package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gofrs/flock"
	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// listEntry is one row of `worker list`.
type listEntry struct {
	ID    string `json:"version_id"`
	Spec  string `json:"spec"`
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
	// Lock is "none", "current" (matches the spec) or "stale".
	Lock  string `json:"lock"`
	Build string `json:"build"`
	// BuildState is "absent", "incomplete" (a realize did not finish),
	// "stale" (complete for an older lock) or "complete".
	BuildState string `json:"build_state"`
}

func (a *app) listCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List version specs with the state of their lock and build",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every spec directory, in search order; an id found twice is
			// listed once, as the first directory's spec wins.
			seen := map[string]bool{}
			var entries []spec.Entry
			for _, dir := range a.specDirs() {
				found, err := spec.List(dir)
				if err != nil {
					return err
				}
				for _, e := range found {
					if !seen[e.ID] {
						seen[e.ID] = true
						entries = append(entries, e)
					}
				}
			}
			rows := make([]listEntry, 0, len(entries))
			for _, e := range entries {
				rows = append(rows, a.listRow(e))
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSPEC\tLOCK\tBUILD")
			for _, r := range rows {
				valid := "ok"
				if !r.Valid {
					valid = "invalid"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, valid, r.Lock, r.BuildState)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) listRow(e spec.Entry) listEntry {
	r := listEntry{ID: e.ID, Spec: e.Path, Lock: "none", BuildState: "absent", Build: a.buildDir(e.ID, "")}
	s, err := spec.LoadFile(e.Path)
	if err != nil {
		r.Error = err.Error()
	} else {
		r.Valid = true
	}
	if l, err := lock.Read(a.lockPath(e.ID)); err == nil {
		r.Lock = "stale"
		if s != nil && l.SpecDigest == s.Digest() {
			r.Lock = "current"
		}
	}
	if st, err := os.Stat(r.Build); err == nil && st.IsDir() {
		r.BuildState = "incomplete"
		m, err := realize.ReadMarker(r.Build, e.ID)
		if l, lerr := lock.Read(a.lockPath(e.ID)); err == nil && lerr == nil && m.Complete {
			r.BuildState = "stale" // complete, for another lock
			if m.CompleteFor(l) {
				r.BuildState = "complete"
			}
		}
	}
	return r
}

// buildDir is where a version's build lives: --target, else COMFY_HOME,
// else <builds root>/comfy-<id>.
func (a *app) buildDir(id, target string) string {
	if target != "" {
		return target
	}
	if a.cfg.ComfyHome != "" {
		return a.cfg.ComfyHome
	}
	return cache.BuildDir(a.cfg.Cache.BuildsRoot(), id)
}

func (a *app) cloneCmd() *cobra.Command {
	var force bool
	var output string
	cmd := &cobra.Command{
		Use:   "clone <src> <dst>",
		Short: "Copy a version spec under a new id",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst := args[0], args[1]
			if !spec.ValidID(dst) {
				return &spec.Error{Msg: fmt.Sprintf("invalid version id %q: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit", dst)}
			}
			path, err := spec.Find(a.specDirs(), src)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out, err := spec.Clone(data, path, dst)
			if err != nil {
				return err
			}
			if output == "" {
				output = filepath.Join(a.cfg.VersionsDir, dst+".json")
			}
			if err := checkOutputName(output, dst); err != nil {
				return err
			}
			if err := a.writeNew(output, out, force); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "[OK] cloned %s to %s: %s\n", src, dst, output)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing spec")
	cmd.Flags().StringVar(&output, "output", "", "where to write the new spec (default <versions-dir>/<dst>.json)")
	return cmd
}

// writeNew writes a spec file, refusing to replace one unless forced.
func (a *app) writeNew(path string, data []byte, force bool) error {
	if _, err := os.Stat(path); err == nil && !force {
		return usageErr(fmt.Errorf("%s already exists: pass --force to overwrite it", path))
	}
	return fsutil.WriteFileAtomic(path, data, 0o644)
}

func (a *app) deleteCmd() *cobra.Command {
	var target string
	var removeSpec bool
	cmd := &cobra.Command{
		Use:   "delete <id>",
		Short: "Remove a version's build and lock (and with --remove-spec its spec)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if !spec.ValidID(id) {
				return &spec.Error{Msg: fmt.Sprintf("invalid version id %q", id)}
			}
			dir := a.buildDir(id, target)
			if err := a.checkDeletable(dir, target != ""); err != nil {
				return err
			}
			if err := checkBuildOf(dir, id, dir == cache.BuildDir(a.cfg.Cache.BuildsRoot(), id)); err != nil {
				return err
			}
			// Wait for a realize of this build to finish rather than pull
			// the tree from under it.
			fl := flock.New(realize.BuildLockPath(dir))
			if _, err := fl.TryLockContext(cmd.Context(), 250*time.Millisecond); err == nil {
				defer fl.Unlock()
			}
			removed, err := realize.RemoveVersion(dir)
			if err != nil {
				return fmt.Errorf("delete %s: build %s: %w", id, dir, err)
			}
			report(a, "build", dir, removed)
			os.Remove(realize.BuildLockPath(dir)) // the build's lock file beside it
			removed, err = removeIfExists(a.lockPath(id))
			if err != nil {
				return fmt.Errorf("delete %s: lock: %w", id, err)
			}
			report(a, "lock", a.lockPath(id), removed)
			if removeSpec {
				p, err := spec.Find(a.specDirs(), id)
				if err != nil {
					return err
				}
				if err := os.Remove(p); err != nil {
					return fmt.Errorf("delete %s: spec: %w", id, err)
				}
				report(a, "spec", p, true)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "the build directory to remove (default <builds root>/comfy-<id>)")
	cmd.Flags().BoolVar(&removeSpec, "remove-spec", false, "also remove versions/<id>.json")
	return cmd
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
	var m struct {
		VersionID string `json:"version_id"`
	}
	if json.Unmarshal(b, &m) == nil && m.VersionID != "" && m.VersionID != id {
		return fmt.Errorf("delete %s: %s holds version %s, not %s; nothing was removed", id, dir, m.VersionID, id)
	}
	return nil
}

func report(a *app, what, path string, removed bool) {
	state := "removed"
	if !removed {
		state = "absent"
	}
	fmt.Fprintf(a.stdout, "%s: %s (%s)\n", what, path, state)
}

// checkDeletable refuses to remove anything but a build directory: a path
// outside the builds root needs an explicit --target, and even then never
// a filesystem root, a home, or a cache/builds root itself.
func (a *app) checkDeletable(dir string, explicit bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	buildsRoot, _ := filepath.Abs(a.cfg.Cache.BuildsRoot())
	cacheRoot, _ := filepath.Abs(a.cacheRoot())
	home, _ := os.UserHomeDir()
	for _, forbidden := range []string{"/", home, buildsRoot, cacheRoot, filepath.Dir(buildsRoot), a.cfg.ModelsDir} {
		if forbidden != "" && abs == filepath.Clean(forbidden) {
			return usageErr(fmt.Errorf("refusing to delete %s: it is not a build directory", abs))
		}
	}
	if strings.HasPrefix(cacheRoot+"/", abs+"/") {
		return usageErr(fmt.Errorf("refusing to delete %s: it contains the shared cache %s", abs, cacheRoot))
	}
	inside := strings.HasPrefix(abs, buildsRoot+string(filepath.Separator))
	if !inside && !explicit {
		return usageErr(fmt.Errorf("refusing to delete %s: it is outside the builds root %s; pass it as --target to delete it anyway", abs, buildsRoot))
	}
	return nil
}

func removeIfExists(p string) (bool, error) {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return true, os.RemoveAll(p)
}
