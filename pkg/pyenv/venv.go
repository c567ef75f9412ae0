package pyenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// VenvDirName is the venv's folder inside a build.
const VenvDirName = ".venv"

// recordName is the file in the venv that says it is complete and what it
// was made from. It is written last, so a venv without it is unfinished.
const recordName = "worker-venv.json"

// record is what EnsureVenv knows about a venv it made. It holds no path
// inside the build, so it stays true when the build moves.
type record struct {
	ID                 string    `json:"id"`
	Requested          string    `json:"requested"`
	Executable         string    `json:"executable"`
	Version            string    `json:"version"`
	Tag                string    `json:"tag"`
	SystemSitePackages bool      `json:"system_site_packages"`
	WithoutPip         bool      `json:"without_pip,omitempty"`
	Created            time.Time `json:"created"`
}

// Venv is a build's ready virtualenv.
type Venv struct {
	Dir string
	// Python is Dir/bin/python: the only way the worker runs Python.
	Python string
	// ID changes whenever the venv is (re)created; PlanDigest includes it
	// so a fresh, empty venv is never mistaken for an installed one.
	ID string
	// Created reports that this call made the venv.
	Created            bool
	Interpreter        Interpreter
	SystemSitePackages bool
	// BasePins are the base packages requirements may not replace (only
	// with SystemSitePackages).
	BasePins []Pin
}

// EnsureVenv makes sure <buildDir>/.venv is a working venv made from the
// configured interpreter with the configured system-site-packages choice.
// A healthy venv is kept (with everything installed in it); a missing,
// unfinished or broken one, or one made from another interpreter or with
// the other choice, is replaced by a fresh, empty one.
func (in *Installer) EnsureVenv(ctx context.Context, buildDir string) (*Venv, error) {
	interp, err := in.Interpreter(ctx)
	if err != nil {
		return nil, err
	}
	if interp.InVenv {
		in.cfg.Logger.Warn().Str("python", interp.Path).Str("base", interp.Executable).
			Msg("the configured python is itself a venv; the build's venv is made from its base and will not see its packages")
	}
	dir, err := filepath.Abs(filepath.Join(buildDir, VenvDirName))
	if err != nil {
		return nil, err
	}
	v := &Venv{Dir: dir, Python: filepath.Join(dir, "bin", "python"), Interpreter: interp, SystemSitePackages: in.cfg.SystemSitePackages}

	rec, reason := in.check(ctx, dir, interp)
	if reason != "" {
		in.cfg.Logger.Info().Str("venv", dir).Str("reason", reason).Msg("creating venv")
		prompt := in.cfg.Prompt
		if prompt == "" {
			prompt = filepath.Base(filepath.Clean(buildDir))
		}
		if rec, err = in.create(ctx, dir, interp, prompt); err != nil {
			return nil, err
		}
		v.Created = true
	}
	v.ID = rec.ID
	if v.SystemSitePackages && !in.cfg.WithoutPip {
		if v.BasePins, err = in.basePins(ctx, v.Python); err != nil {
			return nil, err
		}
		if len(v.BasePins) == 0 {
			in.cfg.Logger.Warn().Str("python", interp.Executable).Strs("packages", in.cfg.KeepFromBase).
				Msg("system_site_packages is on but the base interpreter has none of these packages; requirements will install them into the venv")
		}
	}
	return v, nil
}

// check returns the venv's record, or why it must be (re)created.
func (in *Installer) check(ctx context.Context, dir string, interp Interpreter) (record, string) {
	rec, err := readRecord(dir)
	switch {
	case errors.Is(err, ErrNoVenv):
		if _, err := os.Stat(dir); err == nil {
			return rec, "unfinished (no " + recordName + ")"
		}
		return rec, "none yet"
	case err != nil:
		return rec, err.Error()
	case rec.Executable != interp.Executable || rec.Tag != interp.Tag:
		return rec, fmt.Sprintf("made from %s (%s), now %s (%s)", rec.Executable, rec.Tag, interp.Executable, interp.Tag)
	case rec.SystemSitePackages != in.cfg.SystemSitePackages:
		return rec, fmt.Sprintf("system_site_packages changed to %v", in.cfg.SystemSitePackages)
	case rec.WithoutPip != in.cfg.WithoutPip:
		return rec, fmt.Sprintf("skip_python changed to %v", in.cfg.WithoutPip)
	}
	var h struct {
		Tag    string `json:"tag"`
		InVenv bool   `json:"in_venv"`
		HasPip bool   `json:"has_pip"`
		Prefix string `json:"prefix"`
	}
	const healthScript = `import json, sys
from importlib.util import find_spec
print(json.dumps({"tag": sys.implementation.cache_tag, "in_venv": sys.prefix != sys.base_prefix,
  "has_pip": find_spec("pip") is not None, "prefix": sys.prefix}))`
	if err := in.probe(ctx, filepath.Join(dir, "bin", "python"), healthScript, nil, &h); err != nil {
		return rec, "bin/python does not run: " + err.Error()
	}
	if !h.InVenv || h.Tag != rec.Tag || !samePath(h.Prefix, dir) {
		return rec, fmt.Sprintf("bin/python is not this venv's (prefix %s, tag %s)", h.Prefix, h.Tag)
	}
	if !h.HasPip && !rec.WithoutPip {
		return rec, "pip is missing from the venv"
	}
	return rec, ""
}

func samePath(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// create replaces dir with a fresh venv. It is made in place rather than
// renamed in, because venv bakes its location into files (activate,
// pip's scripts); the record written last is what marks it finished.
func (in *Installer) create(ctx context.Context, dir string, interp Interpreter, prompt string) (record, error) {
	if !interp.HasPip && !in.cfg.WithoutPip {
		return record{}, &ToolError{Msg: fmt.Sprintf("python %s cannot create a venv with pip (no venv/ensurepip module): install python3-venv or choose another options.python", interp.Path)}
	}
	if err := removeVenv(dir); err != nil {
		return record{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return record{}, err
	}
	args := []string{"-m", "venv", "--symlinks", "--prompt", prompt}
	if in.cfg.SystemSitePackages {
		args = append(args, "--system-site-packages")
	}
	seed := len(interp.SeedWheels) > 0 && !in.cfg.WithoutPip
	if seed || in.cfg.WithoutPip {
		args = append(args, "--without-pip")
	}
	args = append(args, dir)
	// The base executable, not Requested: a pyenv shim picks its version
	// from the working directory, and the record must name what was used.
	res, err := run(ctx, command{name: interp.Executable, args: args, env: in.cfg.Env})
	if err != nil {
		return record{}, &InstallError{Tool: "venv", Op: "create", ExitCode: res.exitCode, Tail: res.tail, Err: err}
	}
	if seed {
		if err := seedVenv(dir, interp); err != nil {
			in.cfg.Logger.Warn().Err(err).Str("venv", dir).Msg("could not unpack pip into the venv; ensurepip installs it instead (slower)")
			res, err := run(ctx, command{name: filepath.Join(dir, "bin", "python"), args: []string{"-m", "ensurepip", "--upgrade", "--default-pip"}, env: in.cfg.Env})
			if err != nil {
				return record{}, &InstallError{Tool: "venv", Op: "ensurepip", ExitCode: res.exitCode, Tail: res.tail, Err: err}
			}
		}
	}
	if err := makeRelocatable(dir); err != nil {
		return record{}, fmt.Errorf("make venv relocatable: %w", err)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return record{}, err
	}
	rec := record{
		ID: hex.EncodeToString(id), Requested: interp.Requested, Executable: interp.Executable,
		Version: interp.Version, Tag: interp.Tag, SystemSitePackages: in.cfg.SystemSitePackages,
		WithoutPip: in.cfg.WithoutPip, Created: time.Now().UTC(),
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return record{}, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, recordName), append(data, '\n'), 0o644); err != nil {
		return record{}, fmt.Errorf("record venv: %w", err)
	}
	return rec, nil
}

// removeVenv deletes an old venv, refusing anything that does not look
// like one: the path comes from a build directory a user may have pointed
// at the wrong place.
func removeVenv(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
			return os.Remove(dir)
		}
		for _, marker := range []string{"pyvenv.cfg", recordName} {
			if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
				return os.RemoveAll(dir)
			}
		}
	}
	return fmt.Errorf("%s exists and is not a virtualenv; move it away so the worker can create the build's venv there", dir)
}

func readRecord(dir string) (record, error) {
	var rec record
	data, err := os.ReadFile(filepath.Join(dir, recordName))
	if errors.Is(err, os.ErrNotExist) {
		return rec, fmt.Errorf("%s: %w", dir, ErrNoVenv)
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.ID == "" {
		return rec, fmt.Errorf("%s: unreadable %s: %v", dir, recordName, err)
	}
	return rec, nil
}
