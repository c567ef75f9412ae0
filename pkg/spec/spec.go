// Package spec defines a version spec (versions/<id>.json): its types, strict
// decoding with JSON-path error messages, validation, and the compatibility
// rules that let every spec written for the original Python tool load
// unchanged. It does no network I/O: refs are resolved by package lock.
package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// SchemaVersion is the only spec schema this package reads and writes.
const SchemaVersion = 2

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidID reports whether id may name a version. Ids become file and
// directory names, so this is also the path-traversal guard for them.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Spec is a decoded, validated and normalised version spec.
type Spec struct {
	// ID is the version id: always the spec's file name (without .json)
	// when loaded from a file.
	ID             string
	Comfy          Repo
	CustomNodes    []Node
	Models         []Model
	PythonPackages []string
	Env            map[string]string
	Options        Options
	Description    string

	// File is the path the spec was read from, if any.
	File string
	// Warnings are compatibility notes found while decoding; the spec is
	// usable but the user should edit it.
	Warnings []Warning
}

// Repo is a git repository pinned by a ref, a commit, or both.
type Repo struct {
	URL string
	// Ref is a branch or tag name ("" means the remote's HEAD).
	Ref string
	// Commit is a 40-hex SHA, or a 7–39 hex abbreviation the lock expands;
	// "" when only Ref pins the repository.
	Commit string
}

// Pinned reports whether the commit is a full SHA, so resolving needs no
// network access.
func (r Repo) Pinned() bool { return IsFullSHA(r.Commit) }

// Node is a custom node repository.
type Node struct {
	Repo
	// Name identifies the node in the spec and the lock.
	Name string
	// Dir is the folder under custom_nodes/; it equals Name unless the
	// legacy target_dir key said otherwise.
	Dir string
	// InstallRequirements, when nil, follows options.install_requirements.
	InstallRequirements *bool
}

// Model is one model file placed at Target, fetched from the first of
// Sources that works.
type Model struct {
	Name    string
	Sources []string
	Target  Target
	// SHA256 is the expected digest in lowercase hex, or "".
	SHA256 string
	// Size is the expected size in bytes, or 0 when unknown.
	Size int64
	// TargetSubdir and TargetPath keep what the spec said, for the lock's
	// original keys.
	TargetSubdir string
	TargetPath   string
}

// Source is the first (preferred) source of the model.
func (m Model) Source() string { return m.Sources[0] }

// Options are the spec's options object.
type Options struct {
	Offline    bool `json:"offline"`
	SkipModels bool `json:"skip_models"`
	// SkipPython installs nothing: ComfyUI runs with the interpreter's own
	// packages (a base image that has them all, an air-gapped host).
	SkipPython          bool     `json:"skip_python,omitempty"`
	Python              string   `json:"python,omitempty"`
	SystemSitePackages  bool     `json:"system_site_packages,omitempty"`
	InstallRequirements *bool    `json:"install_requirements,omitempty"`
	ComfyArgs           []string `json:"comfy_args,omitempty"`
}

// NodeInstallsRequirements reports whether node n's requirements.txt goes
// into the Python step.
func (s *Spec) NodeInstallsRequirements(n Node) bool {
	if n.InstallRequirements != nil {
		return *n.InstallRequirements
	}
	if s.Options.InstallRequirements != nil {
		return *s.Options.InstallRequirements
	}
	return true
}

// PythonOrDefault is the interpreter the build's venv is made from.
func (o Options) PythonOrDefault() string {
	if o.Python == "" {
		return "python3"
	}
	return o.Python
}

// Warning is a non-fatal note about a spec, with the JSON path it concerns.
type Warning struct {
	Path string
	Msg  string
}

func (w Warning) String() string {
	if w.Path == "" {
		return w.Msg
	}
	return w.Path + ": " + w.Msg
}

// Error is an invalid spec (or spec input such as a models list). Callers
// map it to exit code 2.
type Error struct {
	File string
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// NotFoundError says no spec exists for an id.
type NotFoundError struct {
	ID   string
	Dirs []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("version %q not found: no %s.json in %s (list versions with `worker list`)",
		e.ID, e.ID, strings.Join(e.Dirs, ", "))
}

// IsInvalid reports whether err means bad input rather than a failure.
func IsInvalid(err error) bool {
	var se *Error
	var nf *NotFoundError
	return errors.As(err, &se) || errors.As(err, &nf)
}

// IsFullSHA reports whether s is 40 hex digits.
func IsFullSHA(s string) bool { return len(s) == 40 && isHex(s) }

// IsAbbrevSHA reports whether s is 7–39 hex digits.
func IsAbbrevSHA(s string) bool { return len(s) >= 7 && len(s) < 40 && isHex(s) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}
