// Package pyenv builds the Python environment of a build: one virtualenv per
// build at <build>/.venv, filled by ONE pip (or uv) resolution over
// ComfyUI's requirements, every node's requirements and the spec's
// python_packages, so no node can silently replace what another needs.
//
// With SystemSitePackages the venv sees the base interpreter's packages, and
// the base's torch, torchvision and torchaudio are pinned by a constraints
// file so no requirement can replace them (a 3 GB download per build
// otherwise). WheelsDir and Offline install with --no-index.
//
// # Keeping the base torch
//
// With SystemSitePackages, pip counts the base's packages as installed, so
// a bare "torch" is already satisfied. Two things could still replace it:
// a requirement line asking for another version ("torch>=2.5" in a node's
// requirements.txt), and a dependency that needs one. Lines that name a
// kept package with a version, URL or extras are reduced to the bare name
// (marker kept) and logged: such pins are usually stale copies from a
// node's README, and the spec chose the base's torch. The node's file is
// never edited; a rewritten copy (includes made absolute) goes to a temp
// dir. The constraints file (torch==<base version>) then makes any
// dependency that really needs another torch fail the resolution, with
// pip's explanation and a hint, instead of silently pulling 3 GB into the
// venv.
//
// # Relocatable venvs
//
// A build made under /workspace (Pods) must run under /runpod-volume
// (serverless). Everything the worker runs goes through <venv>/bin/python,
// which needs two things: pyvenv.cfg beside it (found relative to the
// executable, so it moves with the tree) and the base interpreter at the
// absolute path pyvenv.cfg's "home" names. The venv uses symlinks, not
// --copies: bin/python3 -> the base interpreter is an absolute path, but a
// path into the image, not into the volume, so it is the same on both mount
// points; and "home" binds the venv to that same base either way, so a copied
// binary would buy nothing while going stale when the image's Python is
// patched. Console scripts pip writes (bin/pip, bin/<tool>) get absolute
// shebangs; they are rewritten to find the interpreter next to themselves,
// and the bash/zsh activate script computes its own location. If the base
// interpreter itself is gone (another image), the venv fails its health
// check and EnsureVenv recreates it with a new ID, which changes PlanDigest
// so the caller reinstalls.
//
// Callers must own the venv's directory (realize installs into a build's
// private stage, or into an in-place build under its lock): nothing here
// guards against two processes installing into the same venv.
package pyenv

import (
	"os"
	"os/exec"
	"sync"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/pkg/progress"
)

// UVMode says when uv replaces pip.
type UVMode int

const (
	// UVAuto uses uv when it is on PATH, except with system site packages:
	// uv does not see packages it did not install into the venv
	// (astral-sh/uv#4466), so it would download torch again.
	UVAuto UVMode = iota
	// UVNever always uses pip.
	UVNever
	// UVAlways requires uv and uses it even with system site packages.
	UVAlways
)

// DefaultKeepFromBase are the packages a system-site-packages venv keeps
// from the base interpreter.
var DefaultKeepFromBase = []string{"torch", "torchvision", "torchaudio"}

// Config configures an Installer. The zero value works: python3, pip (or uv
// when on PATH), the package index pip is configured for.
type Config struct {
	// Python is the interpreter the venv is made from, a name on PATH or a
	// path. Default "python3".
	Python string
	// SystemSitePackages makes the venv see the base interpreter's
	// packages, so a base image's torch is reused.
	SystemSitePackages bool
	// WithoutPip makes a venv for an interpreter that already has every
	// package (options.skip_python): it sees the interpreter's packages
	// whatever SystemSitePackages says, has no pip, and nothing is ever
	// installed into it, so no index, wheel or ensurepip is needed.
	WithoutPip bool
	// KeepFromBase are the base packages that requirements may not replace
	// when SystemSitePackages is on. Default DefaultKeepFromBase.
	KeepFromBase []string
	// WheelsDir installs from these wheels only (--no-index --find-links).
	WheelsDir string
	// Offline installs without any index (--no-index), from WheelsDir when
	// set.
	Offline bool
	// PipCacheDir is pip's --cache-dir, shared by every build on the
	// volume; uv uses <PipCacheDir>/uv. Empty: the tools' defaults.
	PipCacheDir string
	// UV picks uv or pip; see UVMode.
	UV UVMode
	// LookPath finds uv; default exec.LookPath.
	LookPath func(string) (string, error)
	// Env is the environment of every subprocess; nil inherits the
	// worker's (so PIP_INDEX_URL and friends apply).
	Env []string
	// TempDir holds the constraints file and rewritten requirement files
	// while pip runs. Default os.TempDir().
	TempDir string
	// Prompt is the venv's prompt (activate shows it); default the build
	// directory's name, which for a build being made is a temp name.
	Prompt string
	Logger zerolog.Logger
	// Progress receives Task "pip" events: one per package pip reports,
	// and a Finished event at the end.
	Progress progress.Func
}

// Installer creates build venvs and installs into them.
type Installer struct {
	cfg Config
	// probed is the interpreter, once a probe succeeded: starting Python
	// costs a noticeable part of a realize on a busy machine.
	mu     sync.Mutex
	probed *Interpreter
}

// New returns an Installer for cfg, with defaults filled in.
func New(cfg Config) *Installer {
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.KeepFromBase == nil {
		cfg.KeepFromBase = DefaultKeepFromBase
	}
	if cfg.WithoutPip {
		cfg.SystemSitePackages = true
	}
	if cfg.LookPath == nil {
		cfg.LookPath = exec.LookPath
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	return &Installer{cfg: cfg}
}

// Tool is the installer program used for one venv.
type Tool struct {
	// Name is "pip" or "uv".
	Name string
	// Path is uv's path; empty for pip, which runs as <venv>/bin/python -m pip.
	Path string
	// Reason says why this tool was chosen, for the plan.
	Reason string
}

// tool picks pip or uv for a venv with or without system site packages.
func (in *Installer) tool(systemSite bool) (Tool, error) {
	if in.cfg.UV == UVNever {
		return Tool{Name: "pip", Reason: "uv disabled"}, nil
	}
	uv, err := in.cfg.LookPath("uv")
	if in.cfg.UV == UVAlways {
		if err != nil {
			return Tool{}, &ToolError{Msg: "uv was required but is not on PATH: install uv or let the worker use pip", Err: err}
		}
		return Tool{Name: "uv", Path: uv, Reason: "uv required by configuration"}, nil
	}
	switch {
	case err != nil:
		return Tool{Name: "pip", Reason: "uv not on PATH"}, nil
	case systemSite:
		return Tool{Name: "pip", Reason: "uv is on PATH but ignores system site packages (would re-download torch)"}, nil
	default:
		return Tool{Name: "uv", Path: uv, Reason: "uv on PATH"}, nil
	}
}
