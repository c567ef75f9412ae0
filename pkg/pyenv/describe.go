package pyenv

import (
	"context"
	"fmt"
	"strings"
)

// Description is the Python step of a dry-run plan: which interpreter,
// which tool, which flags. Describe changes nothing.
type Description struct {
	Interpreter        Interpreter
	SystemSitePackages bool
	Tool               Tool
	// Source says where packages come from.
	Source   string
	CacheDir string
	// Kept are the base packages pinned by constraints.
	Kept []Pin
	// Command is the install command; the venv is shown as
	// <build>/.venv and generated files as <...> placeholders.
	Command     []string
	Neutralised []Neutralised
	Warnings    []string
	// WithoutPip: the venv gets no pip and nothing is installed
	// (options.skip_python).
	WithoutPip bool
}

// Describe says how Install would run plan for a venv made now. It fails
// with a *ToolError when the interpreter or a required uv is unusable, and
// when a requirements file cannot be read.
func (in *Installer) Describe(ctx context.Context, plan Plan) (*Description, error) {
	interp, err := in.Interpreter(ctx)
	if err != nil {
		return nil, err
	}
	if in.cfg.WithoutPip {
		return &Description{Interpreter: interp, SystemSitePackages: true, WithoutPip: true}, nil
	}
	tool, err := in.tool(in.cfg.SystemSitePackages)
	if err != nil {
		return nil, err
	}
	d := &Description{Interpreter: interp, SystemSitePackages: in.cfg.SystemSitePackages, Tool: tool, CacheDir: in.cfg.PipCacheDir}
	switch {
	case in.cfg.WheelsDir != "":
		d.Source = "wheels in " + in.cfg.WheelsDir + " only (--no-index)"
	case in.cfg.Offline:
		d.Source = "none: offline (--no-index)"
	default:
		d.Source = "the package index pip is configured for"
	}
	if d.SystemSitePackages {
		// The base, not Requested: a venv made from a venv sees the base's
		// site packages.
		if d.Kept, err = in.basePins(ctx, interp.Executable); err != nil {
			return nil, err
		}
		if len(d.Kept) == 0 {
			d.Warnings = append(d.Warnings, fmt.Sprintf("system_site_packages is on but %s has none of %s: requirements will install them into the venv", interp.Executable, strings.Join(in.cfg.KeepFromBase, ", ")))
		}
	}
	if interp.InVenv {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s is a venv: the build's venv is made from its base %s and does not see its packages", interp.Path, interp.Executable))
	}
	if plan.Empty() {
		return d, nil
	}
	inv, err := in.prepare(plan, tool, "<build>/.venv/bin/python", d.Kept, "")
	if err != nil {
		return nil, err
	}
	d.Command = append([]string{inv.program}, redactArgs(inv.args)...)
	d.Neutralised = inv.notes
	d.Warnings = append(d.Warnings, inv.warnings...)
	return d, nil
}

// String renders the description for the dry-run output.
func (d *Description) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "python: %s\n", d.Interpreter)
	if d.WithoutPip {
		b.WriteString("  venv: <build>/.venv without pip, seeing the interpreter's own packages\n")
		b.WriteString("  nothing to install: options.skip_python is on\n")
		return b.String()
	}
	fmt.Fprintf(&b, "  venv: <build>/.venv, system site packages %v\n", d.SystemSitePackages)
	fmt.Fprintf(&b, "  installer: %s (%s)\n", d.Tool.Name, d.Tool.Reason)
	fmt.Fprintf(&b, "  packages from: %s\n", d.Source)
	if d.CacheDir != "" {
		fmt.Fprintf(&b, "  cache: %s\n", d.CacheDir)
	}
	if len(d.Kept) > 0 {
		kept := make([]string, len(d.Kept))
		for i, p := range d.Kept {
			kept[i] = p.String()
		}
		fmt.Fprintf(&b, "  kept from the base: %s\n", strings.Join(kept, ", "))
	}
	if len(d.Command) > 0 {
		fmt.Fprintf(&b, "  command: %s\n", strings.Join(d.Command, " "))
	} else {
		b.WriteString("  nothing to install\n")
	}
	for _, n := range d.Neutralised {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	for _, w := range d.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	return b.String()
}
