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

func TestLocalFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    LocalConfig
		wantErr string
	}{
		{map[string]string{}, LocalConfig{Dir: "/tmp/x/runpod-comfy/builds"}, ""},
		{map[string]string{"COMFY_LOCAL_DIR": "off"}, LocalConfig{}, ""},
		{map[string]string{"COMFY_LOCAL_DIR": "None"}, LocalConfig{}, ""},
		{map[string]string{"COMFY_LOCAL_DIR": "/scratch/c", "COMFY_LOCAL_COPIES": "3", "COMFY_LOCAL_MAX_SIZE": "1000"},
			LocalConfig{Dir: "/scratch/c", Keep: 3, MaxBytes: 1000}, ""},
		{map[string]string{"COMFY_LOCAL_COPIES": "two"}, LocalConfig{}, `COMFY_LOCAL_COPIES="two": want a positive whole number`},
		{map[string]string{"COMFY_LOCAL_MAX_SIZE": "20GB"}, LocalConfig{}, `COMFY_LOCAL_MAX_SIZE="20GB": want a number of bytes`},
	} {
		got, err := LocalFromEnv(func(k string) string { return tc.env[k] }, "/tmp/x")
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%v: err %v, want %q", tc.env, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.env, got, err, tc.want)
		}
	}
}
