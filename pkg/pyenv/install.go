package pyenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runpod-comfy/worker/pkg/progress"
)

// invocation is a prepared pip or uv command.
type invocation struct {
	tool     Tool
	program  string
	args     []string
	notes    []Neutralised
	warnings []string
	pins     []Pin
}

// Install runs ONE resolution of plan into the venv at venvDir (made by
// EnsureVenv):
//
//	<venv>/bin/python -m pip install [--no-index [--find-links W]] [--cache-dir C]
//	    [-c <base pins>] -r <ComfyUI> -r <node>... <python_packages in order>
//
// or the same through `uv pip install --python <venv>/bin/python`. A
// failure is an *InstallError carrying the tool's last output lines.
// Cancelling ctx kills the tool and everything it started.
func (in *Installer) Install(ctx context.Context, venvDir string, plan Plan) error {
	if plan.Empty() {
		return nil
	}
	dir, err := filepath.Abs(venvDir)
	if err != nil {
		return err
	}
	rec, err := readRecord(dir)
	if err != nil {
		return err
	}
	if rec.WithoutPip {
		return &ToolError{Msg: fmt.Sprintf("the venv %s has no pip (options.skip_python): nothing can be installed into it; turn skip_python off to install requirements", dir)}
	}
	tool, err := in.tool(rec.SystemSitePackages)
	if err != nil {
		return err
	}
	python := filepath.Join(dir, "bin", "python")
	var pins []Pin
	if rec.SystemSitePackages {
		if pins, err = in.basePins(ctx, python); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp(in.cfg.TempDir, "pyenv-install-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	inv, err := in.prepare(plan, tool, python, pins, work)
	if err != nil {
		return err
	}
	log := in.cfg.Logger.With().Str("venv", dir).Str("tool", tool.Name).Logger()
	for _, n := range inv.notes {
		log.Warn().Str("source", n.Source).Str("requirement", n.Requirement).Str("kept", n.Kept).
			Msg("requirement names a package the base interpreter keeps; its version is ignored")
	}
	for _, w := range inv.warnings {
		log.Warn().Msg(w)
	}
	log.Info().Strs("args", redactArgs(inv.args)).Msg("installing python requirements")

	item := filepath.Base(filepath.Dir(dir))
	seen := int64(0)
	onLine := func(stream, line string) {
		log.Debug().Str("stream", stream).Msg(line)
		if msg, counts := progressLine(line); msg != "" {
			if counts {
				seen++
			}
			in.cfg.Progress.Report(progress.Event{Task: "pip", Item: item, Done: seen, Unit: "packages", Message: msg})
		}
	}
	start := time.Now()
	res, err := run(ctx, command{name: inv.program, args: inv.args, dir: filepath.Dir(dir), env: in.cfg.Env, onLine: onLine})
	finished := progress.Event{Task: "pip", Item: item, Done: seen, Unit: "packages", Finished: true, Message: "installed", Elapsed: time.Since(start)}
	if err != nil {
		finished.Message = "failed"
		if ctx.Err() != nil {
			finished.Message = "interrupted"
		}
		in.cfg.Progress.Report(finished)
		if ctx.Err() != nil {
			return fmt.Errorf("install into %s: %w", dir, err)
		}
		ie := &InstallError{Tool: tool.Name, Op: "install", ExitCode: res.exitCode, Tail: res.tail, Err: err}
		ie.Hint = in.hint(ie, inv)
		return ie
	}
	in.cfg.Progress.Report(finished)
	// Scripts pip just wrote carry this location in their shebangs.
	if err := makeRelocatable(dir); err != nil {
		return fmt.Errorf("make venv scripts relocatable: %w", err)
	}
	return nil
}

// progressLine picks the lines of pip and uv output worth a progress
// event; counts is set for one line per package.
func progressLine(line string) (msg string, counts bool) {
	t := strings.TrimSpace(line)
	for _, p := range []string{"Collecting ", "Processing ", "Requirement already satisfied: "} {
		if strings.HasPrefix(t, p) {
			return t, true
		}
	}
	for _, p := range []string{"Installing collected packages", "Successfully installed", "Resolved ", "Prepared ", "Installed ", "Uninstalled "} {
		if strings.HasPrefix(t, p) {
			return t, false
		}
	}
	return "", false
}

// prepare builds the command for plan. With workDir "" it writes nothing
// and names generated files by placeholders (for Describe).
func (in *Installer) prepare(plan Plan, tool Tool, python string, pins []Pin, workDir string) (*invocation, error) {
	inv := &invocation{tool: tool, pins: pins}
	keep := map[string]string{}
	for _, p := range pins {
		keep[normName(p.Name)] = p.Version
	}
	if tool.Name == "uv" {
		inv.program = tool.Path
		inv.args = []string{"pip", "install", "--python", python}
	} else {
		inv.program = python
		inv.args = []string{"-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"}
	}
	if in.cfg.Offline || in.cfg.WheelsDir != "" {
		inv.args = append(inv.args, "--no-index")
	}
	if in.cfg.WheelsDir != "" {
		inv.args = append(inv.args, "--find-links", in.cfg.WheelsDir)
	} else if in.cfg.Offline {
		inv.warnings = append(inv.warnings, "offline without a wheels directory: only requirements that are already installed can be satisfied")
	}
	if in.cfg.PipCacheDir != "" {
		cache := in.cfg.PipCacheDir
		if tool.Name == "uv" {
			cache = filepath.Join(cache, "uv")
		}
		inv.args = append(inv.args, "--cache-dir", cache)
	}
	if len(pins) > 0 {
		var b strings.Builder
		for _, p := range pins {
			b.WriteString(p.String() + "\n")
		}
		constraints := "<constraints: " + strings.TrimSpace(strings.ReplaceAll(b.String(), "\n", " ")) + ">"
		if workDir != "" {
			constraints = filepath.Join(workDir, "base-constraints.txt")
			if err := os.WriteFile(constraints, []byte(b.String()), 0o644); err != nil {
				return nil, err
			}
		}
		inv.args = append(inv.args, "-c", constraints)
	}
	files := []NodeRequirements{}
	if plan.CoreRequirements != "" {
		files = append(files, NodeRequirements{Name: "ComfyUI", Path: plan.CoreRequirements})
	}
	files = append(files, plan.Nodes...)
	written := 0
	for _, f := range files {
		w := &reqWalker{keep: keep, source: f.Name, workDir: workDir, written: &written}
		p, err := w.use(f.Path, false, 0)
		if err != nil {
			return nil, err
		}
		inv.notes = append(inv.notes, w.notes...)
		inv.args = append(inv.args, "-r", p)
	}
	forcing := false
	for _, a := range splitPackages(plan.Packages) {
		text := a.text
		if a.pkg {
			if bare, kept, ok := neutralise(text, keep); ok {
				inv.notes = append(inv.notes, Neutralised{Source: "python_packages", Requirement: text, Kept: kept})
				text = bare
			}
		} else if text == "--force-reinstall" || text == "-I" || text == "--ignore-installed" {
			forcing = true
		}
		inv.args = append(inv.args, text)
	}
	if forcing && len(pins) > 0 {
		inv.warnings = append(inv.warnings, "python_packages asks pip to reinstall everything it resolves: packages the base interpreter provides (torch included) will be copied into the venv")
	}
	return inv, nil
}

// hint says what to do about a failed install, when the output shows a
// known kind of failure.
func (in *Installer) hint(ie *InstallError, inv *invocation) string {
	switch {
	case ie.Conflict():
		for _, p := range inv.pins {
			if ie.contains("(constraint) " + p.Name) {
				return fmt.Sprintf("a requirement needs another %s than the base interpreter's %s: use a base image with a matching %s, or turn system_site_packages off", p.Name, p.Version, p.Name)
			}
		}
		return "these requirements cannot be installed together: pin compatible versions in python_packages, or turn install_requirements off for one of the nodes involved"
	case ie.Missing() && in.cfg.WheelsDir != "":
		return fmt.Sprintf("a wheel is missing from %s: add it (pip download -d %s <requirement>) or install without --wheels-dir", in.cfg.WheelsDir, in.cfg.WheelsDir)
	case ie.Missing() && in.cfg.Offline:
		return "offline mode has no package index: provide the wheels with --wheels-dir, or run online once"
	}
	return ""
}

// freezeScript prints what `pip freeze` prints (without pip, setuptools,
// wheel and distribute), from package metadata alone: importing pip means
// hundreds of module files, compiled on first use, which on a network
// volume takes seconds per build.
const freezeScript = `import json
from importlib import metadata
lines = {}
for d in metadata.distributions():
    name = d.metadata["Name"]
    if not name:
        continue
    key = name.lower().replace("_", "-").replace(".", "-")
    if key in lines or key in ("pip", "setuptools", "wheel", "distribute"):
        continue
    line = name + "==" + d.version
    try:
        info = json.loads(d.read_text("direct_url.json") or "null")
    except ValueError:
        info = None
    if isinstance(info, dict) and info.get("url"):
        url = info["url"]
        if info.get("dir_info", {}).get("editable"):
            line = "-e " + url
        elif "vcs_info" in info:
            vcs = info["vcs_info"]
            line = name + " @ " + vcs.get("vcs", "git") + "+" + url + "@" + vcs.get("commit_id", "")
        else:
            line = name + " @ " + url
    lines[key] = line
for key in sorted(lines):
    print(lines[key])`

// Freeze lists the packages the venv's python sees, as `pip freeze` (or
// `uv pip freeze`) prints them. With pip this includes the base
// interpreter's packages in a system-site-packages venv (torch among
// them), which is what the build runs with; it is read from the packages'
// metadata (see freezeScript).
func (in *Installer) Freeze(ctx context.Context, venvDir string) ([]string, error) {
	dir, err := filepath.Abs(venvDir)
	if err != nil {
		return nil, err
	}
	rec, err := readRecord(dir)
	if err != nil {
		return nil, err
	}
	tool, err := in.tool(rec.SystemSitePackages)
	if err != nil {
		return nil, err
	}
	python := filepath.Join(dir, "bin", "python")
	c := command{name: python, args: []string{"-c", freezeScript}, env: in.cfg.Env, capture: true}
	if tool.Name == "uv" {
		c.name, c.args = tool.Path, []string{"pip", "freeze", "--python", python}
	}
	res, err := run(ctx, c)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("freeze %s: %w", dir, err)
		}
		return nil, &InstallError{Tool: tool.Name, Op: "freeze", ExitCode: res.exitCode, Tail: res.tail, Err: err}
	}
	var out []string
	for _, l := range strings.Split(string(res.stdout), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, nil
}
