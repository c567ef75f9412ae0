package version

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/runpod-comfy/worker/internal/units"
)

// WriteText prints the report for a person: one line per thing removed
// (or that a dry run would remove), then the total and what was kept.
// minAge is the option the gc ran with.
func (r *GCReport) WriteText(w io.Writer, minAge time.Duration) {
	verb := "removed"
	if r.DryRun {
		verb = "would remove"
	}
	for _, b := range r.Builds.Removed {
		fmt.Fprintf(w, "%s build %s (%s)\n", verb, b.Path, units.Bytes(b.Size))
	}
	m := r.Models
	for _, b := range m.Blobs {
		fmt.Fprintf(w, "%s model sha256:%s (%s)\n", verb, b.SHA256, units.Bytes(b.Size))
		for _, l := range b.Links {
			fmt.Fprintf(w, "  and its link %s\n", l)
		}
	}
	for _, p := range m.Partials {
		fmt.Fprintf(w, "%s partial download %s (%s)\n", verb, filepath.Base(p.Path), units.Bytes(p.Size))
	}
	freed := m.Freed + r.Builds.Freed
	if r.Git != nil {
		for _, g := range r.Git.Removed {
			fmt.Fprintf(w, "%s git repository %s (%s)\n", verb, g.Key, units.Bytes(g.Size))
			freed += g.Size
		}
	}
	for _, s := range r.Snapshots {
		fmt.Fprintf(w, "%s snapshot %s (%s)\n", verb, s.Path, units.Bytes(s.Size))
		freed += s.Size
	}
	for _, l := range r.Local {
		fmt.Fprintf(w, "%s local copy %s (%s)\n", verb, l.Path, units.Bytes(l.Size))
		freed += l.Size
	}
	fmt.Fprintf(w, "%s %s; kept %s in use, %d placed elsewhere, %d younger than %s, %d being fetched\n",
		verb, units.Bytes(freed), units.Count(m.Kept, "model"), m.Linked, m.Recent, minAge, m.Busy)
}
