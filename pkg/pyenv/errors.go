package pyenv

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoVenv is returned by Install and Freeze for a directory EnsureVenv
// did not make (or did not finish making).
var ErrNoVenv = errors.New("not a venv made by the worker (run realize again to create it)")

// ToolError reports a missing or unusable installer tool or interpreter.
type ToolError struct {
	Msg string
	Err error
}

func (e *ToolError) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *ToolError) Unwrap() error { return e.Err }

// InstallError is a failed pip or uv run. Tail holds the last lines of its
// output (stdout and stderr interleaved: pip prints "ERROR:" on stderr but
// explains a conflict on stdout).
type InstallError struct {
	// Tool is "pip" or "uv"; Op is "install" or "freeze".
	Tool, Op string
	// ExitCode is the tool's exit status, -1 when it did not exit by itself.
	ExitCode int
	Tail     []string
	// Hint says what to do, when the failure is a known kind.
	Hint string
	Err  error
}

func (e *InstallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s failed", e.Tool, e.Op)
	if e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	if s := e.Summary(); s != "" {
		b.WriteString(": " + s)
	}
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	if len(e.Tail) > 0 {
		b.WriteString("\n" + strings.Join(e.Tail, "\n"))
	}
	return b.String()
}

func (e *InstallError) Unwrap() error { return e.Err }

// Summary is the tool's own error lines ("ERROR: ..." for pip, "error: ..."
// for uv), joined, or the last line of output when there are none.
func (e *InstallError) Summary() string {
	var errs []string
	for _, l := range e.Tail {
		t := strings.TrimSpace(l)
		// pip's closing "ResolutionImpossible: for help visit <url>" adds
		// nothing to the line before it.
		if (strings.HasPrefix(t, "ERROR:") || strings.HasPrefix(t, "error:")) && !strings.Contains(t, "for help visit") {
			errs = append(errs, t)
		}
	}
	if len(errs) > 0 {
		return strings.Join(errs, " ")
	}
	for i := len(e.Tail) - 1; i >= 0; i-- {
		if t := strings.TrimSpace(e.Tail[i]); t != "" {
			return t
		}
	}
	return ""
}

// Conflict reports whether the resolver found requirements that cannot be
// satisfied together.
func (e *InstallError) Conflict() bool {
	return e.contains("ResolutionImpossible", "conflicting dependencies", "No solution found", "requirements are unsatisfiable")
}

// Missing reports whether a requirement matched no distribution (typical
// offline, with a wheels directory that lacks it).
func (e *InstallError) Missing() bool {
	return e.contains("No matching distribution found", "Could not find a version that satisfies", "was not found in the package registry", "not found in the provided package locations")
}

func (e *InstallError) contains(subs ...string) bool {
	for _, l := range e.Tail {
		for _, s := range subs {
			if strings.Contains(l, s) {
				return true
			}
		}
	}
	return false
}
