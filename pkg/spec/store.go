package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Find returns the path of <id>.json in the first of dirs that has it.
func Find(dirs []string, id string) (string, error) {
	if !ValidID(id) {
		return "", &Error{Msg: fmt.Sprintf("invalid version id %q: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit", id)}
	}
	for _, d := range dirs {
		p := filepath.Join(d, id+".json")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("find spec %s: %w", id, err)
		}
	}
	return "", &NotFoundError{ID: id, Dirs: dirs}
}

// Load finds and decodes the spec for id.
func Load(dirs []string, id string) (*Spec, error) {
	p, err := Find(dirs, id)
	if err != nil {
		return nil, err
	}
	return LoadFile(p)
}

// Entry is one spec file found by List.
type Entry struct {
	ID   string
	Path string
}

// List returns the spec files in dir, sorted by id. A missing dir is empty.
func List(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list specs: %w", err)
	}
	var out []Entry
	for _, de := range des {
		name := de.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || de.IsDir() || strings.HasPrefix(name, ".") || !ValidID(id) {
			continue
		}
		out = append(out, Entry{ID: id, Path: filepath.Join(dir, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
