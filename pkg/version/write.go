package version

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// SpecPath is where a new spec for id goes: output when given, else
// <versions dir>/<id>.json. A spec's file name is its version id, so any
// other name would hold another version, and an existing file is replaced
// only with force.
func (m *Manager) SpecPath(id, output string, force bool) (string, error) {
	if !spec.ValidID(id) {
		return "", &spec.Error{Msg: fmt.Sprintf("invalid version id %q: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit", id)}
	}
	if output == "" {
		output = filepath.Join(m.cfg.VersionsDir, id+".json")
	}
	if filepath.Base(output) != id+".json" {
		return "", &InputError{fmt.Sprintf("--output %s: a spec's file name is its version id: name the file %s.json (in any directory)", output, id)}
	}
	if _, err := os.Stat(output); err == nil && !force {
		return "", &InputError{fmt.Sprintf("%s already exists: pass --force to overwrite it, or `worker clone` to copy it", output)}
	}
	return output, nil
}

// WriteSpec writes a spec file atomically: readers see the old file or the
// new one, never part of it.
func WriteSpec(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, data, 0o644)
}

// Clone copies src's spec under the id dst to output (see SpecPath) and
// returns where it went.
func (m *Manager) Clone(src, dst, output string, force bool) (string, error) {
	out, err := m.SpecPath(dst, output, force)
	if err != nil {
		return "", err
	}
	path, err := m.Find(src)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	cloned, err := spec.Clone(data, path, dst)
	if err != nil {
		return "", err
	}
	return out, WriteSpec(out, cloned)
}
