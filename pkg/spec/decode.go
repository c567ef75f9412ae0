package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// LoadFile reads and decodes the spec at path. The file name (minus
// .json) is the version id.
func LoadFile(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return Decode(data, path)
}

// Decode parses and validates a spec. When file is not empty, its base name
// without ".json" is the id (a different version_id inside only warns, as the
// original tool never checked it) and error messages name it.
func Decode(data []byte, file string) (*Spec, error) {
	d := &decoder{file: file}
	s, err := d.decode(data)
	if err != nil {
		if se, ok := err.(*Error); ok && se.File == "" {
			se.File = file
		}
		return nil, err
	}
	s.File = file
	s.Warnings = d.warns
	return s, nil
}

type decoder struct {
	file  string
	warns []Warning
}

func (d *decoder) warn(path, format string, args ...any) {
	d.warns = append(d.warns, Warning{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func errf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

var topKeys = []string{"schema_version", "version_id", "id", "comfy", "custom_nodes", "models", "python_packages", "env", "options", "description"}

func (d *decoder) decode(data []byte) (*Spec, error) {
	v, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	top, ok := v.(*object)
	if !ok {
		return nil, errf("", "a spec must be a JSON object, got %s", typeName(v))
	}
	if _, has := top.get("schema_version"); !has {
		_, hasLock := top.get("lock")
		_, hasTarget := top.get("target")
		if hasLock || hasTarget {
			return nil, errf("", "this is a v1 spec (it has \"lock\"/\"target\" and no schema_version), which is no longer read: "+
				"write a schema 2 spec with schema_version, version_id, comfy, custom_nodes and models, e.g. with `worker create <id> --repo https://github.com/comfyanonymous/ComfyUI`")
		}
	}
	if err := checkKeys(top, "", topKeys); err != nil {
		return nil, err
	}
	s := &Spec{Env: map[string]string{}}
	if err := d.schemaVersion(top); err != nil {
		return nil, err
	}
	if s.ID, err = d.versionID(top); err != nil {
		return nil, err
	}
	if s.Description, _, err = str(top, "description", ""); err != nil {
		return nil, err
	}
	cv, ok := top.get("comfy")
	if !ok || cv == nil {
		return nil, errf("comfy", "required: the ComfyUI core repository, e.g. {\"repo\": \"https://github.com/comfyanonymous/ComfyUI\", \"ref\": \"master\"}")
	}
	co, err := asObject(cv, "comfy", []string{"repo", "ref", "commit"})
	if err != nil {
		return nil, err
	}
	if s.Comfy, err = d.repo(co, "comfy"); err != nil {
		return nil, err
	}
	if s.CustomNodes, err = d.nodes(top); err != nil {
		return nil, err
	}
	if s.Models, err = d.models(top); err != nil {
		return nil, err
	}
	if s.PythonPackages, err = d.packages(top); err != nil {
		return nil, err
	}
	if s.Env, err = envMap(top); err != nil {
		return nil, err
	}
	if s.Options, err = d.options(top); err != nil {
		return nil, err
	}
	if err := d.checkSkipPython(s); err != nil {
		return nil, err
	}
	return s, nil
}

func (d *decoder) schemaVersion(top *object) error {
	v, ok := top.get("schema_version")
	if !ok {
		return errf("schema_version", "required: add \"schema_version\": 2")
	}
	if n, isNum := v.(json.Number); isNum {
		if f, err := strconv.ParseFloat(string(n), 64); err == nil && f == SchemaVersion {
			return nil
		}
	}
	return errf("schema_version", "unsupported schema version %s: only 2 is supported", render(v))
}

func (d *decoder) versionID(top *object) (string, error) {
	vid, hasVID, err := str(top, "version_id", "")
	if err != nil {
		return "", err
	}
	lid, hasID, err := str(top, "id", "")
	if err != nil {
		return "", err
	}
	path := "version_id"
	switch {
	case hasVID && hasID && vid != lid:
		return "", errf("id", "legacy key id %q disagrees with version_id %q: keep only version_id", lid, vid)
	case !hasVID && hasID:
		vid, path = lid, "id"
	}
	vid = strings.TrimSpace(vid)
	if vid == "" {
		return "", errf("version_id", "required: the version's name, e.g. \"flux-dev\" (the same as the file name)")
	}
	if !ValidID(vid) {
		return "", errf(path, "invalid version id %q: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit", vid)
	}
	if d.file == "" {
		return vid, nil
	}
	fileID := strings.TrimSuffix(filepath.Base(d.file), ".json")
	if id, rev, ok := strings.Cut(fileID, "@"); ok && ValidID(id) && !ValidID(fileID) {
		// A copy saved as <id>@<commit>.json (a file out of a repository's
		// history): the part before '@' names the version.
		d.warn("", "file name %q: the version id is %q; the part after '@' (%s) is ignored", filepath.Base(d.file), id, rev)
		fileID = id
	}
	if !ValidID(fileID) {
		return "", errf("", "invalid spec file name %q: the name is the version id, so use 1–64 letters, digits, '.', '_' or '-'", filepath.Base(d.file))
	}
	if vid != fileID {
		d.warn(path, "version id %q differs from the file name; the file name %q is the id", vid, fileID)
	}
	return fileID, nil
}

func (d *decoder) repo(o *object, path string) (Repo, error) {
	var r Repo
	url, _, err := str(o, "repo", path)
	if err != nil {
		return r, err
	}
	url = strings.TrimSpace(url)
	if url == "" {
		return r, errf(join(path, "repo"), "required: the git repository URL")
	}
	if err := checkRepoURL(url); err != nil {
		return r, errf(join(path, "repo"), "%v", err)
	}
	r.URL = url
	if r.Ref, _, err = str(o, "ref", path); err != nil {
		return r, err
	}
	r.Ref = strings.TrimSpace(r.Ref)
	if isPlaceholder(r.Ref) {
		d.warn(join(path, "ref"), "placeholder %q ignored: the remote's default branch is used", r.Ref)
		r.Ref = ""
	}
	if r.Ref != "" {
		if err := checkRefName(r.Ref); err != nil {
			return r, errf(join(path, "ref"), "%v", err)
		}
	}
	commit, _, err := str(o, "commit", path)
	if err != nil {
		return r, err
	}
	commit = strings.TrimSpace(commit)
	cpath := join(path, "commit")
	switch {
	case commit == "":
	case IsFullSHA(commit) || IsAbbrevSHA(commit):
		r.Commit = strings.ToLower(commit)
	case isPlaceholder(commit):
		d.warn(cpath, "placeholder %q ignored: the commit is resolved from ref %s", commit, refOrHead(r.Ref))
	default:
		if err := checkRefName(commit); err != nil {
			return r, errf(cpath, "%q is neither a commit SHA (40 hex digits) nor a branch or tag name: %v", commit, err)
		}
		if r.Ref != "" && r.Ref != commit {
			return r, errf(cpath, "%q is a branch or tag name, and ref is %q: keep one, as \"ref\"", commit, r.Ref)
		}
		d.warn(cpath, "%q is a branch or tag name, not a commit: it is read as ref %q; move it to \"ref\" (the lock pins the commit)", commit, commit)
		r.Ref = commit
	}
	return r, nil
}

func refOrHead(ref string) string {
	if ref == "" {
		return "HEAD"
	}
	return strconv.Quote(ref)
}

// isPlaceholder spots the values the original's docs used in example specs
// ("<resolved-sha>", "sha256:...") so they load with a warning.
func isPlaceholder(s string) bool {
	return strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") || s == "..." || s == "…"
}

var schemeURL = regexp.MustCompile(`^(https?|ssh|git|file)://[^\s]+$`)
var scpURL = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$`)

func checkRepoURL(u string) error {
	if schemeURL.MatchString(u) {
		if strings.HasPrefix(u, "file://") {
			return nil
		}
		if err := checkHostPort(u); err != nil {
			return fmt.Errorf("%q: %v", redactURL(u), err)
		}
		return nil
	}
	if scpURL.MatchString(u) {
		return nil
	}
	if strings.HasPrefix(u, "/") && !strings.ContainsAny(u, " \t\n") {
		return nil
	}
	return fmt.Errorf("%q is not a git URL: use https://host/owner/repo, git@host:owner/repo or file:///path", redactURL(u))
}

// checkRefName applies the parts of git-check-ref-format that matter for a
// name we pass to ls-remote.
func checkRefName(ref string) error {
	switch {
	case strings.ContainsAny(ref, " \t\n~^:?*[\\\x7f"):
		return fmt.Errorf("ref %q contains a character git forbids in ref names", ref)
	case strings.Contains(ref, "..") || strings.Contains(ref, "@{") || strings.Contains(ref, "//"):
		return fmt.Errorf("ref %q is not a valid git ref name", ref)
	case strings.HasPrefix(ref, "-") || strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") ||
		strings.HasSuffix(ref, ".") || strings.HasSuffix(ref, ".lock"):
		return fmt.Errorf("ref %q is not a valid git ref name", ref)
	}
	for _, r := range ref {
		if r < 0x20 {
			return fmt.Errorf("ref %q contains a control character", ref)
		}
	}
	return nil
}

// checkSkipPython keeps options.skip_python honest: pip never runs, so
// python_packages could not be installed, and requirements a node asks for
// explicitly are not either (a warning says so).
func (d *decoder) checkSkipPython(s *Spec) error {
	if !s.Options.SkipPython {
		return nil
	}
	if len(s.PythonPackages) > 0 {
		return errf("options.skip_python", "is on, so nothing is installed, but python_packages lists %d entries: "+
			"remove python_packages (and install them into the interpreter) or turn skip_python off", len(s.PythonPackages))
	}
	for i, n := range s.CustomNodes {
		if n.InstallRequirements != nil && *n.InstallRequirements {
			d.warn(index("custom_nodes", i)+".install_requirements", "node %q asks for its requirements, but options.skip_python installs nothing: the interpreter must already have them", n.Name)
		}
	}
	return nil
}
