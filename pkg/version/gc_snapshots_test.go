package version

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// TestGCSnapshots: gc removes the snapshots of builds that are no longer on
// disk and packs that died, once older than --min-age; the snapshot of a
// current build stays whatever its age.
func TestGCSnapshots(t *testing.T) {
	e := newEnv(t)
	m := Open(e.cfg)
	dir := m.layout().Snapshots()
	os.MkdirAll(dir, 0o755)
	old := time.Now().Add(-48 * time.Hour)
	for _, f := range []struct {
		name string
		old  bool
	}{
		{"v-current.snap", true},
		{"v-replaced.snap", true},
		{"v-recent.snap", false},
		{".v-died.snap.tmp-123456", true},
		{"notes.txt", true},
	} {
		p := filepath.Join(dir, f.name)
		os.WriteFile(p, []byte("x"), 0o644)
		if f.old {
			os.Chtimes(p, old, old)
		}
	}
	for _, dry := range []bool{true, false} {
		got, err := m.gcSnapshots(map[string]bool{"v-current": true}, GCOptions{MinAge: 24 * time.Hour, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range got {
			names = append(names, filepath.Base(r.Path))
		}
		sort.Strings(names)
		if len(names) != 2 || names[0] != ".v-died.snap.tmp-123456" || names[1] != "v-replaced.snap" {
			t.Errorf("dry run %v: removed %v; want the replaced build's snapshot and the dead pack", dry, names)
		}
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 3 {
		t.Errorf("%d files left; want the current, the recent one and notes.txt", len(left))
	}
}
