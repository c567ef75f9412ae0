package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// TestGCCommand: gc keeps everything a version uses, and frees a deleted
// version's model and repositories; realizes and gc exclude each other.
func TestGCCommand(t *testing.T) {
	e := newTestEnv(t)
	versionFixture(t, e)
	e.mustRun("realize", "demo")
	cacheRoot := e.vars["COMFY_CACHE_ROOT"]
	blobs, _ := filepath.Glob(filepath.Join(cacheRoot, "models", "sha256", "*"))
	placed := filepath.Join(e.vars["MODELS_DIR"], "checkpoints", "tiny.safetensors")
	repos := []string{filepath.Join(cacheRoot, "git", "github.com", "comfyanonymous", "ComfyUI.git"), filepath.Join(cacheRoot, "git", "github.com", "acme", "ComfyUI-Acme.git")}
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	if len(blobs) != 1 || !exists(placed) || !exists(repos[0]) || !exists(repos[1]) {
		t.Fatalf("fixture: blobs %v", blobs)
	}

	out := e.mustRun("gc", "--min-age", "0", "--git", "--prune-models-dir")
	if !strings.Contains(out, "removed 0 B; kept 1 model in use") || !exists(blobs[0]) || !exists(repos[0]) {
		t.Fatalf("gc removed what a version uses:\n%s", out)
	}

	e.mustRun("delete", "demo", "--remove-spec")
	out = e.mustRun("gc", "--min-age", "0", "--git")
	if !strings.Contains(out, "1 placed elsewhere") || !exists(blobs[0]) || strings.Contains(out, "model sha256") {
		t.Errorf("a model still in MODELS_DIR was removed:\n%s", out)
	}
	if exists(repos[0]) || exists(repos[1]) || !strings.Contains(out, "removed git repository github.com/acme/ComfyUI-Acme") {
		t.Errorf("unused repositories kept:\n%s", out)
	}
	out = e.mustRun("gc", "--min-age", "0", "--prune-models-dir", "--dry-run")
	if !strings.Contains(out, "would remove model sha256:") || !strings.Contains(out, "and its link "+placed) || !exists(blobs[0]) || !exists(placed) {
		t.Errorf("dry run:\n%s", out)
	}
	e.mustRun("gc", "--min-age", "0", "--prune-models-dir")
	if exists(blobs[0]) || exists(placed) {
		t.Error("--prune-models-dir left the unused model")
	}

	// A realize waits while gc holds the cache.
	versionFixture(t, e)
	lk := flock.New(filepath.Join(cacheRoot, "locks", "gc.lock"))
	if ok, err := lk.TryLock(); err != nil || !ok {
		t.Fatal("lock", err)
	}
	done := make(chan string, 1)
	go func() {
		_, out, errs := e.run("realize", "demo")
		done <- out + errs
	}()
	select {
	case out := <-done:
		t.Fatalf("realize ran while gc held the cache:\n%s", out)
	case <-time.After(700 * time.Millisecond):
	}
	lk.Unlock()
	select {
	case out := <-done:
		if !strings.Contains(out, "waiting for a cache gc to finish") || !strings.Contains(out, "[OK] demo realized") {
			t.Errorf("realize after gc:\n%s", out)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("realize did not finish after gc released the cache")
	}
}
