package version

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Find returns the path of id's spec: the first spec directory holding it.
func (m *Manager) Find(id string) (string, error) { return spec.Find(m.SpecDirs(), id) }

// Load finds and decodes id's spec, checks that realize can use every
// model source, and logs the spec's warnings.
func (m *Manager) Load(id string) (*spec.Spec, error) {
	s, err := spec.Load(m.SpecDirs(), id)
	if err != nil {
		return nil, err
	}
	if err := checkSources(s); err != nil {
		return nil, err
	}
	m.LogWarnings(s.File, s.Warnings)
	return s, nil
}

// LoadArg is Load for a command-line argument, which may also be the path
// of a spec file (it holds a '/' or names an existing *.json file), as the
// original tool's users pass them. The file's name is the version id.
func (m *Manager) LoadArg(arg string) (*spec.Spec, error) {
	if !isSpecPath(arg) {
		return m.Load(arg)
	}
	s, err := spec.LoadFile(arg)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &InputError{fmt.Sprintf("no spec file %s: give a version id (versions/<id>.json) or the path of a spec file", arg)}
	}
	if err != nil {
		return nil, err
	}
	if err := checkSources(s); err != nil {
		return nil, err
	}
	if p, err := m.Find(s.ID); err != nil || !sameFile(p, arg) {
		m.log.Warn().Str("file", arg).Str("version_id", s.ID).
			Msgf("using a spec outside the spec directories: its id is %s (from the file name); workers find it only at versions/%s.json", s.ID, s.ID)
	}
	m.LogWarnings(s.File, s.Warnings)
	return s, nil
}

func isSpecPath(arg string) bool {
	return strings.ContainsRune(arg, filepath.Separator) || (strings.HasSuffix(arg, ".json") && !spec.ValidID(arg))
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// LogWarnings logs what a spec (or a file read for one) warned about.
func (m *Manager) LogWarnings(file string, ws []spec.Warning) {
	for _, w := range ws {
		m.log.Warn().Str("file", file).Str("path", w.Path).Msg(w.Msg)
	}
}

// checkSources parses every model source as a download would, so that a
// source realize cannot use (an hf:// URL without a file, a civitai://
// reference that is not a number) makes the spec invalid up front, before
// a realize has exported trees and built a venv. Placeholders copied from
// the original tool's docs ("hf://...") stay loadable, with the warning the
// spec already carries, as the original's users expect.
func checkSources(s *spec.Spec) error {
	for _, mod := range s.Models {
		for _, src := range mod.Sources {
			var se *models.SourceError
			if _, err := models.ParseSource(src); err != nil && !(errors.As(err, &se) && se.Placeholder) {
				return &spec.Error{File: s.File, Path: "models", Msg: fmt.Sprintf("model %s: source %q: %v", mod.Name, models.RedactString(src), err)}
			}
		}
	}
	return nil
}
