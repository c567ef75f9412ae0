package realize

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/models"
)

// TestCollectBuilds: gc removes the builds no version points to once their
// lease is older than MinAge (earlier builds, stages of dead realizes,
// builds moved aside), and never the current build, nor a stage or an
// earlier build that was used recently.
func TestCollectBuilds(t *testing.T) {
	f := newFixture(t)
	f.setSpec(f.specDoc(""))
	first := f.realize().BuildDir
	f.nodes["node-b"].Commit("fix", map[string]string{"fix.py": "y = 2\n"})
	f.setSpec(f.specDoc(""))
	second := f.realize().BuildDir
	store := StoreDir(f.build)
	old := time.Now().Add(-2 * time.Hour)
	deadStage := filepath.Join(store, stagePrefix+"dead")
	liveStage := filepath.Join(store, stagePrefix+"live")
	aside := filepath.Join(store, asidePrefix+"legacy")
	for _, d := range []string{deadStage, liveStage, aside} {
		os.MkdirAll(filepath.Join(d, "x"), 0o755)
		os.WriteFile(filepath.Join(d, "x", "f"), []byte("12345"), 0o644)
	}
	tempLink := filepath.Join(filepath.Dir(f.build), ".comfy-v.tmp-0123456789abcdef")
	os.WriteFile(tempLink, nil, 0o644)
	for _, p := range []string{first, deadStage, aside, tempLink} {
		os.Chtimes(p, old, old)
	}

	dry, err := CollectBuilds(context.Background(), filepath.Dir(f.build), BuildGCOptions{MinAge: time.Hour, DryRun: true})
	if err != nil || len(dry.Removed) != 4 || !exists(first) {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	rep, err := CollectBuilds(context.Background(), filepath.Dir(f.build), BuildGCOptions{MinAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var removed []string
	for _, b := range rep.Removed {
		removed = append(removed, filepath.Base(b.Path))
	}
	if len(rep.Removed) != 4 || rep.Current != 1 || rep.Freed <= 10 {
		t.Fatalf("removed %v, report %+v", removed, rep)
	}
	for _, p := range []string{first, deadStage, aside, tempLink} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the gc", p)
		}
	}
	for _, p := range []string{second, liveStage} {
		if !exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	if res := f.realize(); !res.NoOp || res.BuildDir != second {
		t.Errorf("realize after gc: %s in %s", actions(res), res.BuildDir)
	}
	if dirs := BuildDirs(filepath.Dir(f.build)); len(dirs) != 1 || dirs[0] != second {
		t.Errorf("BuildDirs = %v", dirs)
	}
}

// TestRealizeWhileGC: one host realizes a version again and again (each
// time with a changed node, so a new build) while another host collects
// builds and models with a short MinAge and no lock between them. Every
// realize succeeds and its build stays complete.
func TestRealizeWhileGC(t *testing.T) {
	f := newFixture(t)
	f.raceSpec()
	volume := filepath.Join(t.TempDir(), "volume")
	lease := cache.Lease{Refresh: 30 * time.Millisecond, Expiry: 300 * time.Millisecond}
	cfg := f.hostWith(volume, lease)
	gcStore, err := models.New(models.Config{Root: filepath.Join(volume, "cache"), Locks: cache.Locks{Off: true}, Lease: cfg.Lease})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var gcErr error
	var gcRuns, collected int
	// What a gc host reads from the versions' locks: their models' sources.
	keep := models.Keep{Digests: map[string]bool{}}
	for _, m := range f.lock.Models {
		keep.Sources = append(keep.Sources, models.KeepSource{Source: m.Source})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			rep, err := CollectBuilds(ctx, filepath.Dir(cfg.BuildDir), BuildGCOptions{MinAge: 400 * time.Millisecond, Lease: cfg.Lease})
			if err != nil && ctx.Err() == nil {
				gcErr = err
				return
			}
			collected += len(rep.Removed)
			if _, err := gcStore.GC(ctx, keep, models.GCOptions{MinAge: 400 * time.Millisecond, LinkDirs: []string{cfg.ModelsDir}}); err != nil && ctx.Err() == nil {
				gcErr = err
				return
			}
			gcRuns++
			time.Sleep(20 * time.Millisecond)
		}
	})
	node := f.trees.repos["https://github.com/o/race-node2"]
	for round := range 3 {
		node.Commit(fmt.Sprintf("r%d", round), map[string]string{"round.py": fmt.Sprintf("ROUND = %d\n", round)})
		f.setSpec(f.raceDoc())
		l := cloneLock(t, f.lock)
		res, err := Realize(context.Background(), cfg, l)
		if err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("round %d: realize during gc: %v", round, err)
		}
		check := newRun(cfg, l, res.BuildDir)
		if check.marker, _ = ReadMarker(res.BuildDir, "v"); !check.upToDate() {
			t.Fatalf("round %d: the build is not complete right after its realize", round)
		}
		time.Sleep(500 * time.Millisecond) // older builds age past MinAge
	}
	cancel()
	wg.Wait()
	if gcErr != nil || gcRuns == 0 || collected == 0 {
		t.Fatalf("gc: %d runs removed %d builds, %v", gcRuns, collected, gcErr)
	}
}
