package pyenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// makeRelocatable removes the venv's own absolute path from the files in
// bin/ that would otherwise break when the build moves: script shebangs
// and the bash/zsh activate script. activate.csh, activate.fish and
// Activate.ps1, which cannot find their own location, are removed: they
// would name the private directory the build was made in, and the worker
// never uses them.
func makeRelocatable(venvDir string) error {
	bin := filepath.Join(venvDir, "bin")
	realBin, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return err
	}
	if err := patchActivate(filepath.Join(bin, "activate"), venvDir); err != nil {
		return err
	}
	for _, name := range []string{"activate.csh", "activate.fish", "Activate.ps1"} {
		if err := os.Remove(filepath.Join(bin, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	entries, err := os.ReadDir(bin)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue // python symlinks
		}
		if err := rewriteShebang(filepath.Join(bin, e.Name()), realBin); err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
	}
	return nil
}

// selfDir is shell that prints the directory of the script being run,
// following a symlink to it.
const selfDir = `"$(dirname -- "$(readlink -f -- "$0")")"`

// rewriteShebang turns "#!<venv>/bin/python3" (and pip's long-path form,
// a "#!/bin/sh" line plus an exec line naming <venv>/bin/python3) into a trampoline that
// runs the python beside the script. Python reads the second and third
// lines as a string literal, so the script body is unchanged. It is the
// form pip itself writes for long paths, with the path made relative.
func rewriteShebang(path, realBin string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	head := make([]byte, 1024)
	n, _ := io.ReadFull(f, head)
	f.Close()
	head = head[:n]
	if !bytes.HasPrefix(head, []byte("#!")) {
		return nil
	}
	lines := strings.SplitN(string(head), "\n", 4)
	interp, skip := "", 0
	switch {
	case strings.HasPrefix(lines[0], "#!/bin/sh") && len(lines) > 2 && strings.HasPrefix(lines[1], "'''exec' "):
		interp, skip = firstQuoted(strings.TrimPrefix(lines[1], "'''exec' ")), 3
	default:
		fields := strings.Fields(strings.TrimPrefix(lines[0], "#!"))
		if len(fields) != 1 {
			return nil // "#!/usr/bin/env python" and friends are already portable
		}
		interp, skip = fields[0], 1
	}
	if interp == "" || !strings.HasPrefix(filepath.Base(interp), "python") {
		return nil
	}
	if d, err := filepath.EvalSymlinks(filepath.Dir(interp)); err != nil || d != realBin {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	body := strings.SplitN(string(data), "\n", skip+1)
	if len(body) <= skip {
		return nil
	}
	tramp := fmt.Sprintf("#!/bin/sh\n'''exec' %s/%s \"$0\" \"$@\"\n' '''\n", selfDir, filepath.Base(interp))
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, []byte(tramp+body[skip]), fi.Mode().Perm())
}

func firstQuoted(s string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, `"`) {
		return strings.Fields(s + " ")[0]
	}
	end := strings.Index(s[1:], `"`)
	if end < 0 {
		return ""
	}
	return s[1 : end+1]
}

// patchActivate makes activate compute VIRTUAL_ENV from its own location
// instead of the path venv wrote. ${BASH_SOURCE[0]:-$0} is the sourced
// file in bash and in zsh.
func patchActivate(path, venvDir string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	self := []byte(`"$(cd -- "$(dirname -- "${BASH_SOURCE[0]:-$0}")/.." && pwd)"`)
	out := data
	for _, q := range []string{`"` + venvDir + `"`, `'` + venvDir + `'`} {
		out = bytes.ReplaceAll(out, []byte(q), self)
	}
	// Unquoted, as shlex.quote leaves a plain path (Python 3.11.2, 3.12+):
	// VIRTUAL_ENV=/path at the end of a line or before a ")".
	bare := regexp.MustCompile(`(?m)=` + regexp.QuoteMeta(venvDir) + `([ \t)]|$)`)
	out = bare.ReplaceAllFunc(out, func(m []byte) []byte {
		return append(append([]byte("="), self...), m[1+len(venvDir):]...)
	})
	if bytes.Equal(out, data) {
		return nil
	}
	return fsutil.WriteFileAtomic(path, out, 0o644)
}
