package fsutil

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestTempNames(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		p := TempPath("/v/builds/comfy-x/.worker-build.json")
		name := filepath.Base(p)
		if seen[name] || !IsTempName(name) || filepath.Dir(p) != "/v/builds/comfy-x" {
			t.Fatalf("temp name %q: duplicate %v, recognised %v", p, seen[name], IsTempName(name))
		}
		seen[name] = true
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"..worker-build.json.tmp-1234567", true}, // an earlier release's
		{".x.tmp-0123456789abcdef", true},
		{"x.tmp-1", false},
		{".x.tmp-", false},
		{".x.tmp-zz", false},
		{".venv", false},
	} {
		if got := IsTempName(tc.name); got != tc.want {
			t.Errorf("IsTempName(%q) = %v", tc.name, got)
		}
	}
}

func TestHeartbeatKeepsALeaseAndNoticesAClaim(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stage")
	os.Mkdir(p, 0o755)
	if err := MarkAbandoned(p); err != nil {
		t.Fatal(err)
	}
	if !Abandoned(p, time.Minute, time.Now()) {
		t.Fatal("a path marked abandoned is not")
	}
	var lost atomic.Bool
	stop := Heartbeat(context.Background(), p, 10*time.Millisecond, func() { lost.Store(true) })
	time.Sleep(50 * time.Millisecond)
	if Abandoned(p, time.Minute, time.Now()) {
		t.Fatal("the heartbeat did not refresh the lease")
	}
	// Another process claims it (renames it away): the writer learns.
	if err := os.Rename(p, p+"-claimed"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !lost.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if !lost.Load() {
		t.Fatal("the heartbeat did not notice its path was claimed")
	}
	if Abandoned(filepath.Join(dir, "none"), 0, time.Now()) {
		t.Fatal("a missing path is abandoned")
	}
}

func TestCloneTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	for p, data := range map[string]string{"a.py": "a", "pkg/b.py": "b", "pkg/__pycache__/b.pyc": "c", "bin/tool": "#!/bin/sh\n"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte(data), 0o644)
	}
	os.Chmod(filepath.Join(src, "bin/tool"), 0o755)
	os.Symlink("../a.py", filepath.Join(src, "bin", "link"))
	dst := filepath.Join(filepath.Dir(src), "dst")
	err := CloneTree(context.Background(), src, dst, func(rel string, d os.DirEntry) bool { return d.IsDir() && d.Name() == "__pycache__" })
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a.py", "pkg/b.py", "bin/tool"} {
		a, _ := os.Stat(filepath.Join(src, p))
		b, err := os.Stat(filepath.Join(dst, p))
		if err != nil || !os.SameFile(a, b) || a.Mode() != b.Mode() {
			t.Errorf("%s: not a hard link of the source with its mode (%v)", p, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(dst, "bin", "link")); err != nil || target != "../a.py" {
		t.Errorf("symlink copied as %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "pkg", "__pycache__")); !os.IsNotExist(err) {
		t.Error("a skipped directory was cloned")
	}
	if err := CloneTree(context.Background(), src, dst, nil); !os.IsExist(err) {
		t.Errorf("clone onto an existing directory: %v", err)
	}
}
