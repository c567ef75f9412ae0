package version

import (
	"os"

	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/snapshot"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Entry is one version as `worker list` shows it.
type Entry struct {
	ID    string `json:"version_id"`
	Spec  string `json:"spec"`
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
	// Lock is "none", "current" (matches the spec) or "stale".
	Lock  string `json:"lock"`
	Build string `json:"build"`
	// BuildState is "absent", "incomplete" (a realize did not finish),
	// "stale" (complete for an older lock) or "complete".
	BuildState string `json:"build_state"`
	// Local says whether this host has a local copy of the complete build:
	// "yes", "old" (only of an earlier build), "no", or "n/a" (copies are
	// off, or the build is on local disk already).
	Local     string `json:"local"`
	LocalCopy string `json:"local_copy,omitempty"`
}

// Specs lists every spec in the spec directories, in search order; an id
// found twice is listed once, as the first directory's spec wins.
func (m *Manager) Specs() ([]spec.Entry, error) {
	seen := map[string]bool{}
	var entries []spec.Entry
	for _, dir := range m.SpecDirs() {
		found, err := spec.List(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range found {
			if !seen[e.ID] {
				seen[e.ID] = true
				entries = append(entries, e)
			}
		}
	}
	return entries, nil
}

// List reports every version with the state of its spec, lock and build.
func (m *Manager) List() ([]Entry, error) {
	specs, err := m.Specs()
	if err != nil {
		return nil, err
	}
	var copies []snapshot.Info
	if m.cfg.Local.Dir != "" {
		copies, _ = snapshot.List(m.cfg.Local.Dir)
	}
	rows := make([]Entry, 0, len(specs))
	for _, e := range specs {
		r := m.entry(e)
		m.localState(&r, copies)
		rows = append(rows, r)
	}
	return rows, nil
}

// localState fills in whether this host has a copy of r's build.
func (m *Manager) localState(r *Entry, copies []snapshot.Info) {
	r.Local = "n/a"
	if r.BuildState != "complete" || !m.wantsLocal(r.Build) {
		return
	}
	key, err := BuildKey(r.ID, r.Build)
	if err != nil {
		return
	}
	r.Local = "no"
	for _, c := range copies {
		switch {
		case c.Key == key:
			r.Local, r.LocalCopy = "yes", c.Dir
			return
		case c.Label == r.ID:
			r.Local = "old"
		}
	}
}

func (m *Manager) entry(e spec.Entry) Entry {
	r := Entry{ID: e.ID, Spec: e.Path, Lock: "none", BuildState: "absent", Build: m.BuildDir(e.ID)}
	s, err := spec.LoadFile(e.Path)
	if err != nil {
		r.Error = err.Error()
	} else {
		r.Valid = true
	}
	l, lerr := lock.Read(m.LockPath(e.ID))
	if lerr == nil {
		r.Lock = "stale"
		if s != nil && l.SpecDigest == s.Digest() {
			r.Lock = "current"
		}
	}
	if st, err := os.Stat(r.Build); err == nil && st.IsDir() {
		r.BuildState = "incomplete"
		mk, err := realize.ReadMarker(r.Build, e.ID)
		if err == nil && lerr == nil && mk.Complete {
			r.BuildState = "stale" // complete, for another lock
			if mk.CompleteFor(l) {
				r.BuildState = "complete"
			}
		}
	}
	return r
}
