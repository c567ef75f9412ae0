package realize

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/realize/realizetest"
)

// TestUpdateLeavesTheRunningBuildAlone: a worker runs ComfyUI from the
// concrete build a realize returned. An update (a node's new commit, a new
// model) makes a new build beside it and switches the version to it; the
// old build's files do not change, and the next realize uses the new one.
func TestUpdateLeavesTheRunningBuildAlone(t *testing.T) {
	f := newFixture(t)
	f.addModel("m.bin", 5000)
	f.addModel("n.bin", 3000)
	models := fmt.Sprintf(`{"source": "%s", "target_path": "loras/m.bin"}`, f.ms.Path("m.bin"))
	f.setSpec(f.specDoc(models))
	old := f.realize().BuildDir
	if old == f.build || filepath.Dir(old) != StoreDir(f.build) {
		t.Fatalf("build dir %s is not a concrete build in %s", old, StoreDir(f.build))
	}
	if cur, _, _ := Current(f.build); cur != old {
		t.Fatalf("the version points at %q, want %s", cur, old)
	}
	before := realizetest.Manifest(t, old)

	f.nodes["node-a"].Commit("feat", map[string]string{"feat.py": "x = 1\n"})
	f.setSpec(f.specDoc(models + fmt.Sprintf(`, {"source": "%s", "target_path": "vae/n.bin"}`, f.ms.Path("n.bin"))))
	res := f.realize()
	if res.BuildDir == old || !exists(filepath.Join(res.BuildDir, "custom_nodes", "node-a", "feat.py")) {
		t.Fatalf("update went to %s (old %s)", res.BuildDir, old)
	}
	if d := realizetest.DiffManifest(realizetest.Manifest(t, old), before); d != "" {
		t.Fatalf("the running build changed under the update: %s", d)
	}
	if out := pythonIn(t, old, "import alpha, beta, gamma; print('ok')"); out != "ok" {
		t.Fatal(out)
	}
	if cur, _, _ := Current(f.build); cur != res.BuildDir {
		t.Fatalf("the version points at %q after the update, want %s", cur, res.BuildDir)
	}
	// Unchanged files are shared, not copied.
	a, _ := os.Stat(filepath.Join(old, "main.py"))
	b, _ := os.Stat(filepath.Join(res.BuildDir, "main.py"))
	if !os.SameFile(a, b) {
		t.Error("the new build copied an unchanged file instead of linking it")
	}
	if again := f.realize(); !again.NoOp || again.BuildDir != res.BuildDir {
		t.Errorf("realize after the update: noop=%v dir=%s", again.NoOp, again.BuildDir)
	}
}

// TestUndoSwitchesBack: undoing a spec edit finds the earlier build, still
// complete, and switches to it without building anything.
func TestUndoSwitchesBack(t *testing.T) {
	f := newFixture(t)
	f.setSpec(f.specDoc(""))
	first := f.realize().BuildDir
	orig := f.nodes["node-b"].Head()
	f.nodes["node-b"].Commit("fix", map[string]string{"fix.py": ""})
	f.setSpec(f.specDoc(""))
	second := f.realize().BuildDir
	f.nodes["node-b"].Git("reset", "--hard", orig)
	f.setSpec(f.specDoc(""))
	exports := f.trees.count("https://github.com/o/node-b")
	res := f.realize()
	if res.BuildDir != first || actions(res) != "build=done" || f.trees.count("https://github.com/o/node-b") != exports {
		t.Fatalf("undo: dir %s (first %s, second %s), steps %s", res.BuildDir, first, second, actions(res))
	}
}

// TestInterruptedRealizeIsContinued: a realize stopped at any point (here
// by its context, as a kill would stop it) leaves the version on its last
// complete build; the next realize takes the abandoned stage over once its
// lease expired and completes a build equal to an uninterrupted one.
func TestInterruptedRealizeIsContinued(t *testing.T) {
	f := newFixture(t)
	f.raceSpec()
	clean, err := Realize(context.Background(), f.host(filepath.Join(f.dir, "clean")), cloneLock(t, f.lock))
	if err != nil {
		t.Fatal(err)
	}
	want := realizetest.Manifest(t, clean.BuildDir)
	rng := rand.New(rand.NewPCG(7, 9))
	for round := range 3 {
		volume := filepath.Join(t.TempDir(), "volume")
		cfg := f.host(volume)
		cfg.Lease = cache.Lease{Refresh: 20 * time.Millisecond, Expiry: 200 * time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(200+rng.IntN(2500))*time.Millisecond)
		_, err := Realize(ctx, cfg, cloneLock(t, f.lock))
		cancel()
		if err == nil {
			continue // finished before the cut: nothing to continue
		}
		if cur, _, _ := Current(cfg.BuildDir); cur != "" {
			t.Fatalf("round %d: an interrupted realize switched the version to %s", round, cur)
		}
		time.Sleep(250 * time.Millisecond) // the lease expires
		res, err := Realize(context.Background(), cfg, cloneLock(t, f.lock))
		if err != nil {
			t.Fatalf("round %d: realize after the interruption: %v", round, err)
		}
		if d := realizetest.DiffManifest(realizetest.Manifest(t, res.BuildDir), want); d != "" {
			t.Fatalf("round %d: the continued build differs from a clean one: %s", round, d)
		}
		if stages, _ := filepath.Glob(filepath.Join(StoreDir(cfg.BuildDir), stagePrefix+"*")); len(stages) != 0 {
			t.Errorf("round %d: stages left: %v", round, stages)
		}
	}
}

// TestEarlierReleaseBuildIsTakenOver: a build an earlier release made in
// place at comfy-<id> becomes the first immutable build's starting point;
// the directory moves aside and comfy-<id> becomes the pointer.
func TestEarlierReleaseBuildIsTakenOver(t *testing.T) {
	f := newFixture(t)
	f.setSpec(f.specDoc(""))
	f.inPlace = true
	f.realize()
	legacyMain, _ := os.Stat(filepath.Join(f.build, "main.py"))
	f.inPlace = false
	exports := f.trees.count("https://github.com/comfyanonymous/ComfyUI")
	res := f.realize()
	if fi, err := os.Lstat(f.build); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("comfy-v is not a link after the takeover: %v", err)
	}
	if cur, _, _ := Current(f.build); cur != res.BuildDir {
		t.Fatalf("pointer at %q, want %s", cur, res.BuildDir)
	}
	now, _ := os.Stat(filepath.Join(res.BuildDir, "main.py"))
	if !os.SameFile(legacyMain, now) || f.trees.count("https://github.com/comfyanonymous/ComfyUI") != exports {
		t.Error("the takeover exported the core again instead of reusing the earlier build's")
	}
	if aside, _ := filepath.Glob(filepath.Join(StoreDir(f.build), asidePrefix+"*")); len(aside) != 1 {
		t.Errorf("the earlier build was not moved aside: %v", aside)
	}
	if out := pythonIn(t, res.BuildDir, "import alpha; print('ok')"); out != "ok" {
		t.Fatal(out)
	}
	if again := f.realize(); !again.NoOp {
		t.Errorf("realize after the takeover: %s", actions(again))
	}
}

// TestLeftoversOfAKilledFirstRealize: a realize killed while writing its
// first marker leaves only the marker's temp file; the directory is still
// the worker's (issue 14, point 2), in place or not.
func TestLeftoversOfAKilledFirstRealize(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(fmt.Sprintf("in place %v", inPlace), func(t *testing.T) {
			f := newFixture(t)
			f.inPlace = inPlace
			f.setSpec(f.specDoc(""))
			os.MkdirAll(f.build, 0o755)
			os.WriteFile(filepath.Join(f.build, "."+MarkerFile+".tmp-1"), []byte("{}"), 0o644)
			res := f.realize()
			if !exists(filepath.Join(res.BuildDir, "main.py")) {
				t.Fatal("no build")
			}
			if left, _ := filepath.Glob(filepath.Join(res.BuildDir, ".*.tmp-*")); len(left) != 0 {
				t.Errorf("leftovers kept: %v", left)
			}
		})
	}
}

// TestModelSourceChangeWithoutChecksum (issue 14, point 3): a model's
// identity includes its sources. A new source is fetched, and the lock
// never pairs it with the old file's digest.
func TestModelSourceChangeWithoutChecksum(t *testing.T) {
	f := newFixture(t)
	s1 := f.addModel("s1.bin", 1000)
	s2 := f.addModel("s2.bin", 1200)
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "loras/m.bin"}`, f.ms.Path("s1.bin"))))
	f.realize()
	if got := f.lock.Models[0].SHA256; got != s1 {
		t.Fatalf("lock digest %s, want s1's %s", got, s1)
	}
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "loras/m.bin"}`, f.ms.Path("s2.bin"))))
	if f.lock.Models[0].SHA256 != "" {
		t.Fatal("the re-resolved lock kept the old source's digest")
	}
	res := f.realize()
	if len(f.ms.Requests("/s2.bin")) != 1 {
		t.Fatalf("s2.bin requested %d times, want 1", len(f.ms.Requests("/s2.bin")))
	}
	if got := realizetest.Digest(t, filepath.Join(f.models, "loras", "m.bin")); got != s2 {
		t.Errorf("the model's file holds %s, want s2's %s", got, s2)
	}
	if got := f.lock.Models[0].SHA256; got != s2 {
		t.Errorf("the lock pairs the new source with %s, want %s", got, s2)
	}
	if got := realizetest.Digest(t, filepath.Join(res.BuildDir, "models", "loras", "m.bin")); got != s2 {
		t.Errorf("the build's link holds %s, want s2's %s", got, s2)
	}
}

// TestFailedModelIsDownloadedOnce (issue 14, point 7): a model whose
// checksum is wrong fails its realize after one download, not two, and the
// other models are still placed.
func TestFailedModelIsDownloadedOnce(t *testing.T) {
	f := newFixture(t)
	f.addModel("bad.bin", 4000)
	good := f.addModel("good.bin", 2000)
	f.setSpec(f.specDoc(fmt.Sprintf(`{"source": "%s", "target_path": "loras/bad.bin", "checksum": "sha256:%s"},
	  {"source": "%s", "target_path": "vae/good.bin"}`, f.ms.Path("bad.bin"), strings.Repeat("0", 64), f.ms.Path("good.bin"))))
	_, err := Realize(context.Background(), f.config(), f.lock)
	var re *Error
	if !errors.As(err, &re) || re.Step != "models" || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("err = %v, want the models step's checksum error", err)
	}
	if n := len(f.ms.Requests("/bad.bin")); n != 1 {
		t.Errorf("the failing model was downloaded %d times, want 1", n)
	}
	if got := realizetest.Digest(t, filepath.Join(f.models, "vae", "good.bin")); got != good {
		t.Errorf("the good model was not placed (%s)", got)
	}
}
