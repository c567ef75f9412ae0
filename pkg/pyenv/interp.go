package pyenv

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/runpod-comfy/worker/internal/jsonx"
)

// probeTimeout bounds a Python start-up that should take milliseconds; a
// hung interpreter on a stalled network volume must not hang realize.
const probeTimeout = 2 * time.Minute

// Interpreter is the Python a build's venv is made from.
type Interpreter struct {
	// Requested is the configured name or path ("python3").
	Requested string
	// Path is what Requested resolved to (a pyenv shim, /usr/bin/python3).
	Path string
	// Executable is the base interpreter the venv's bin/python will point
	// at: the real installation, even when Requested is itself a venv.
	Executable string
	// Version is the full version ("3.11.7").
	Version string
	// Tag is the ABI tag packages are built for ("cpython-311"); a venv
	// whose base changes tag must be rebuilt.
	Tag string
	// InVenv reports that Requested is itself inside a virtualenv: the
	// build's venv is made from its base and does not see its packages.
	InVenv bool
	// HasPip reports whether ensurepip is available to put pip in a venv.
	HasPip bool
	// SeedWheels are the wheels ensurepip would install into a venv (pip,
	// and setuptools before Python 3.12), by project name; empty when they
	// could not be found.
	SeedWheels map[string]string
}

func (i Interpreter) String() string {
	s := fmt.Sprintf("%s (%s, Python %s)", i.Requested, i.Executable, i.Version)
	if i.InVenv {
		s += " [a venv: its base is used]"
	}
	return s
}

// minMinor is the oldest Python 3 minor ComfyUI runs on.
const minMinor = 9

const interpScript = `import glob, json, os, platform, sys, sysconfig
try:
    from importlib.util import find_spec
    has_pip = find_spec("ensurepip") is not None and find_spec("venv") is not None
except Exception:
    has_pip = False
seeds = {}
try:
    import ensurepip
    dirs = [getattr(ensurepip, "_WHEEL_PKG_DIR", None), sysconfig.get_config_var("WHEEL_PKG_DIR"),
            os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")]
    for name in ["pip"] + (["setuptools"] if sys.version_info < (3, 12) else []):
        for d in dirs:
            found = sorted(glob.glob(os.path.join(d, name + "-*-none-any.whl"))) if d else []
            if len(found) == 1:
                seeds[name] = found[0]
                break
except Exception:
    seeds = {}
print(json.dumps({
    "seed_wheels": seeds,
    "executable": getattr(sys, "_base_executable", None) or sys.executable,
    "version": platform.python_version(),
    "major": sys.version_info[0], "minor": sys.version_info[1],
    "tag": sys.implementation.cache_tag or "",
    "in_venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
    "has_pip": has_pip,
}))`

// Interpreter probes the configured interpreter, once per Installer. It
// fails with a *ToolError when it is missing, does not run, or is older
// than 3.9.
func (in *Installer) Interpreter(ctx context.Context) (Interpreter, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.probed != nil {
		return *in.probed, nil
	}
	it, err := in.probeInterpreter(ctx)
	if err == nil {
		in.probed = &it
	}
	return it, err
}

func (in *Installer) probeInterpreter(ctx context.Context) (Interpreter, error) {
	it := Interpreter{Requested: in.cfg.Python}
	path, err := exec.LookPath(in.cfg.Python)
	if err != nil {
		return it, &ToolError{Msg: fmt.Sprintf("python interpreter %q not found: install it or set options.python to one that exists", in.cfg.Python), Err: err}
	}
	it.Path = path
	var p struct {
		Executable string            `json:"executable"`
		Version    string            `json:"version"`
		Major      int               `json:"major"`
		Minor      int               `json:"minor"`
		Tag        string            `json:"tag"`
		InVenv     bool              `json:"in_venv"`
		HasPip     bool              `json:"has_pip"`
		Seeds      map[string]string `json:"seed_wheels"`
	}
	if err := in.probe(ctx, path, interpScript, nil, &p); err != nil {
		return it, &ToolError{Msg: fmt.Sprintf("python interpreter %s does not run", path), Err: err}
	}
	it.Executable, it.Version, it.Tag, it.InVenv, it.HasPip = p.Executable, p.Version, p.Tag, p.InVenv, p.HasPip
	if p.Seeds["pip"] != "" {
		it.SeedWheels = p.Seeds
	}
	if p.Major != 3 || p.Minor < minMinor {
		return it, &ToolError{Msg: fmt.Sprintf("python interpreter %s is Python %s; ComfyUI needs 3.%d or newer: set options.python", path, p.Version, minMinor)}
	}
	return it, nil
}

// Pin is a base package a system-site-packages venv keeps.
type Pin struct {
	Name, Version string
}

func (p Pin) String() string { return p.Name + "==" + p.Version }

// pinsScript lists the versions of the named distributions that python
// sees outside its own venv: in a venv, only the system site packages; in
// a base interpreter, everything on its path. The first one on sys.path
// wins, as it does for import.
const pinsScript = `import json, os, re, sys
from importlib import metadata
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
want = set(norm(n) for n in sys.argv[1:])
paths = [p for p in sys.path if p]
if sys.prefix != sys.base_prefix:
    own = os.path.join(os.path.realpath(sys.prefix), "")
    paths = [p for p in paths if not os.path.join(os.path.realpath(p), "").startswith(own)]
found = {}
for d in metadata.distributions(path=paths):
    n = norm(d.metadata["Name"] or "")
    if n in want and n not in found:
        found[n] = d.version
print(json.dumps(found))`

// basePins asks python which of KeepFromBase its base provides.
func (in *Installer) basePins(ctx context.Context, python string) ([]Pin, error) {
	found := map[string]string{}
	if err := in.probe(ctx, python, pinsScript, in.cfg.KeepFromBase, &found); err != nil {
		return nil, fmt.Errorf("read base package versions with %s: %w", python, err)
	}
	pins := make([]Pin, 0, len(found))
	for n, v := range found {
		pins = append(pins, Pin{Name: n, Version: v})
	}
	sort.Slice(pins, func(i, j int) bool { return pins[i].Name < pins[j].Name })
	return pins, nil
}

// probe runs a Python snippet that prints one JSON value into v.
func (in *Installer) probe(ctx context.Context, python, script string, args []string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	// -s: the user site (~/.local) is not part of any venv; -I would also
	// drop PYTHONPATH, which the venv does honour at run time.
	res, err := run(ctx, command{name: python, args: append([]string{"-s", "-c", script}, args...), env: in.cfg.Env, capture: true})
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.Join(res.tail, " | "))
	}
	if err := json.Unmarshal(res.stdout, v); err != nil {
		return fmt.Errorf("unexpected output %q from %s: %s", res.stdout, python, jsonx.ErrorText(err))
	}
	return nil
}

var nameRun = regexp.MustCompile(`[-_.]+`)

// normName is a project name in PEP 503 normal form.
func normName(n string) string { return strings.ToLower(nameRun.ReplaceAllString(n, "-")) }
