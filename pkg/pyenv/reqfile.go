package pyenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// Neutralised is a requirement that asked for a version of a package the
// base interpreter keeps; it was reduced to the bare name, so the base's
// version satisfies it.
type Neutralised struct {
	// Source is "ComfyUI", the node's name, or "python_packages".
	Source string
	// File is the requirements file ("" for python_packages).
	File string
	// Requirement is the line as written; Kept is the base's version.
	Requirement, Kept string
}

func (n Neutralised) String() string {
	where := n.Source
	if n.File != "" {
		where += " (" + n.File + ")"
	}
	return fmt.Sprintf("%s asks for %q; keeping the base interpreter's %s", where, n.Requirement, n.Kept)
}

// maxIncludeDepth stops -r cycles.
const maxIncludeDepth = 10

var (
	commentRe = regexp.MustCompile(`(^|\s+)#.*$`)
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?`)
	directRe  = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*@\s*\S`)
	eggRe     = regexp.MustCompile(`#(?:.*&)?egg=([A-Za-z0-9][A-Za-z0-9._-]*)`)
	includeRe = regexp.MustCompile(`^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|$)(.*)$`)
)

// logicalLines splits a requirements file the way pip does: backslash
// continuations joined, comments removed, blank lines dropped.
func logicalLines(data string) []string {
	var out []string
	var cur strings.Builder
	for _, raw := range strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n") {
		if strings.HasSuffix(raw, `\`) {
			cur.WriteString(strings.TrimSuffix(raw, `\`))
			continue
		}
		cur.WriteString(raw)
		line := strings.TrimSpace(commentRe.ReplaceAllString(cur.String(), ""))
		cur.Reset()
		if line != "" {
			out = append(out, line)
		}
	}
	if line := strings.TrimSpace(commentRe.ReplaceAllString(cur.String(), "")); line != "" {
		out = append(out, line)
	}
	return out
}

// include reports whether line pulls in another file, and which.
func include(line string) (target string, constraint, ok bool) {
	m := includeRe.FindStringSubmatch(line)
	if m == nil || strings.TrimSpace(m[2]) == "" {
		return "", false, false
	}
	return strings.TrimSpace(m[2]), m[1] == "-c" || m[1] == "--constraint", true
}

// isRemote reports a URL pip fetches itself; relative-path rules do not
// apply to it.
func isRemote(p string) bool {
	return strings.Contains(p, "://")
}

// reqName returns the project name a requirement line or python_packages
// entry installs, and any environment marker, or "" for lines that are not
// requirements (options) or whose name cannot be told (bare local paths).
func reqName(line string) (name, marker string) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "-") {
		return "", ""
	}
	req := line
	// PEP 508 wants a space before the marker after a URL, so a ";" inside
	// a URL is not a marker.
	if i := strings.Index(line, ";"); i >= 0 && (!isRemote(line[:i]) || strings.HasSuffix(line[:i], " ")) {
		req, marker = strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
	}
	if m := directRe.FindStringSubmatch(req); m != nil {
		return normName(m[1]), marker
	}
	if m := eggRe.FindStringSubmatch(req); m != nil {
		return normName(m[1]), marker
	}
	if strings.HasSuffix(strings.ToLower(req), ".whl") {
		// A wheel URL or path: the name is the file name's first field.
		return normName(strings.SplitN(path.Base(filepath.ToSlash(req)), "-", 2)[0]), marker
	}
	if req == "" || isRemote(req) || strings.ContainsAny(req[:1], "./~") {
		return "", marker
	}
	return normName(nameRe.FindString(req)), marker
}

// neutralise returns the bare form of a requirement for a kept package, or
// ok=false when the line is something else or already bare.
func neutralise(line string, keep map[string]string) (bare, kept string, ok bool) {
	name, marker := reqName(line)
	version, isKept := keep[name]
	if name == "" || !isKept {
		return "", "", false
	}
	bare = name
	if marker != "" {
		bare += " ; " + marker
	}
	if normName(strings.TrimSpace(line)) == name {
		return "", "", false
	}
	return bare, version, true
}

// reqWalker walks one requirements file and what it includes.
type reqWalker struct {
	keep    map[string]string
	source  string
	workDir string // "" for a dry run: nothing is written
	notes   []Neutralised
	// written numbers the copies, shared by the walkers of one install.
	written *int
}

// use returns the path pip should read for file: the file itself, or a
// rewritten copy in workDir when it or a file it includes names a kept
// package with a version. In a rewritten copy every include points at an
// absolute path, because the copy no longer sits beside its includes.
func (w *reqWalker) use(file string, constraint bool, depth int) (string, error) {
	if depth > maxIncludeDepth {
		return "", fmt.Errorf("%s: requirements include each other more than %d deep", file, maxIncludeDepth)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s requirements: %w", w.source, err)
	}
	changed := false
	var out []string
	for _, line := range logicalLines(string(data)) {
		if target, isC, ok := include(line); ok {
			if isRemote(target) {
				out = append(out, line)
				continue
			}
			abs := target
			if !filepath.IsAbs(abs) {
				abs = filepath.Join(filepath.Dir(file), target)
			}
			sub, err := w.use(abs, isC || constraint, depth+1)
			if err != nil {
				return "", err
			}
			if sub != abs {
				changed = true
			}
			flag := "-r"
			if isC {
				flag = "-c"
			}
			out = append(out, flag+" "+sub)
			continue
		}
		if bare, kept, ok := neutralise(line, w.keep); ok {
			changed = true
			w.notes = append(w.notes, Neutralised{Source: w.source, File: file, Requirement: line, Kept: kept})
			if constraint {
				// A constraint on a kept package can only fight ours.
				out = append(out, "# "+line)
			} else {
				out = append(out, bare)
			}
			continue
		}
		out = append(out, line)
	}
	if !changed {
		return file, nil
	}
	if w.workDir == "" {
		return "<rewritten " + file + ">", nil
	}
	*w.written++
	dst := filepath.Join(w.workDir, fmt.Sprintf("req-%03d-%s", *w.written, filepath.Base(file)))
	body := fmt.Sprintf("# %s, rewritten by the worker: the base interpreter's packages are kept\n%s\n", file, strings.Join(out, "\n"))
	if err := os.WriteFile(dst, []byte(body), 0o644); err != nil {
		return "", err
	}
	return dst, nil
}

// hashReqFile hashes file's content and, recursively, the content of the
// local files it includes, so an edit to an included file changes the
// digest too. Paths are not hashed: the same build under another mount
// point must give the same digest.
func hashReqFile(file string, depth int) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(data)
	if depth < maxIncludeDepth {
		for _, line := range logicalLines(string(data)) {
			target, _, ok := include(line)
			if !ok || isRemote(target) {
				continue
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(file), target)
			}
			sub, err := hashReqFile(target, depth+1)
			if err != nil {
				sub = "missing"
			}
			fmt.Fprintf(h, "\ninclude %s %s", filepath.Base(target), sub)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
