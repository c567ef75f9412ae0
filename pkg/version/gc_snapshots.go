package version

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runpod-comfy/worker/pkg/snapshot"
)

// Removed is a file or directory gc removed (or would remove).
type Removed struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// gcSnapshots removes snapshots of builds that are no longer on disk (gc
// collected them, or a person), once older than MinAge: a worker that prepared
// the old build a moment ago may still be unpacking it. Temp files of
// packs that died go after the same age.
func (m *Manager) gcSnapshots(current map[string]bool, opts GCOptions) ([]Removed, error) {
	dir := m.layout().Snapshots()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gc: snapshots: %w", err)
	}
	var out []Removed
	now := time.Now()
	for _, e := range entries {
		name := e.Name()
		key, isSnap := strings.CutSuffix(name, ".snap")
		temp := strings.HasPrefix(name, ".") && strings.Contains(name, ".snap.tmp-")
		if !isSnap && !temp || isSnap && current[key] {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < opts.MinAge {
			continue
		}
		p := filepath.Join(dir, name)
		if !opts.DryRun {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return out, fmt.Errorf("gc: %w", err)
			}
		}
		out = append(out, Removed{Path: p, Size: fi.Size()})
	}
	return out, nil
}

// gcLocal removes this host's local copies that no process uses.
func (m *Manager) gcLocal(dryRun bool) ([]Removed, error) {
	if m.cfg.Local.Dir == "" {
		return nil, nil
	}
	infos, err := snapshot.List(m.cfg.Local.Dir)
	if err != nil {
		return nil, fmt.Errorf("gc: local copies: %w", err)
	}
	sizes := map[string]int64{}
	for _, in := range infos {
		sizes[in.Key] = in.Bytes
	}
	var out []Removed
	if dryRun {
		for _, in := range infos {
			out = append(out, Removed{Path: in.Dir, Size: in.Bytes})
		}
		return out, nil
	}
	store, err := m.localStore()
	if err != nil {
		return nil, err
	}
	keys, err := store.Clear()
	for _, k := range keys {
		out = append(out, Removed{Path: store.Path(k), Size: sizes[k]})
	}
	return out, err
}
