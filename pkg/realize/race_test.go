package realize

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/realize/realizetest"
)

// host is one worker of a simulated multi-host volume: its own model
// store, git client and realize config, with every lock off, as a host
// whose locks do not reach the others.
func (f *fixture) host(volume string) Config {
	f.t.Helper()
	return f.hostWith(volume, cache.Lease{})
}

// hostWith is host with the given lease timing for stages and downloads.
func (f *fixture) hostWith(volume string, lease cache.Lease) Config {
	f.t.Helper()
	var rewrites []gitsrc.Rewrite
	for url, r := range f.trees.repos {
		rewrites = append(rewrites, gitsrc.Rewrite{From: url, To: r.FileURL()})
	}
	off := cache.Locks{Off: true}
	st, err := models.New(models.Config{Root: filepath.Join(volume, "cache"), MaxAttempts: 2, BackoffBase: 1, Locks: off, Lease: lease})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { st.Close() })
	cfg := f.config()
	cfg.BuildDir = filepath.Join(volume, "builds", "comfy-v")
	cfg.ModelsDir = filepath.Join(volume, "models")
	cfg.Models = st
	cfg.Locks = off
	cfg.Lease = lease
	cfg.Trees = &gitsrc.Trees{Client: gitsrc.NewClient(gitsrc.Options{Rewrites: rewrites, Locks: off}), CacheDir: filepath.Join(volume, "cache", "git")}
	return cfg
}

// raceSpec is a version of three nodes and three models (one with a
// checksum, one without, whose digest is learned on download, one inside a
// node's folder) and a venv with nothing to install: pip's run time would
// dwarf the races under test. It returns each model's file, relative to
// the build or under $MODELS_DIR, with its sha256.
func (f *fixture) raceSpec() map[string]string {
	core := gittest.NewRepo(f.t)
	core.Commit("core", map[string]string{"main.py": "print('comfy')\n", "comfy/__init__.py": "", "models/checkpoints/put_here": ""})
	f.trees.repos["https://github.com/comfyanonymous/ComfyUI-lite"] = core
	for i := range 3 {
		r := gittest.NewRepo(f.t)
		r.Commit("n", map[string]string{"__init__.py": fmt.Sprintf("NODE = %d\n", i), "web/app.js": strings.Repeat("x", 4000)})
		f.trees.repos[fmt.Sprintf("https://github.com/o/race-node%d", i)] = r
	}
	sums := map[string]string{}
	for _, m := range []struct {
		name string
		size int
	}{{"m1.safetensors", 1 << 20}, {"m2.bin", 700_000}, {"m3.bin", 300_000}} {
		sums[m.name] = f.addModel(m.name, m.size)
		f.ms.Throttle("/"+m.name, 16<<20)
	}
	f.raceDoc = func() string {
		var nodes []string
		for i := range 3 {
			url := fmt.Sprintf("https://github.com/o/race-node%d", i)
			nodes = append(nodes, fmt.Sprintf(`{"repo": "%s", "commit": "%s", "install_requirements": false}`, url, f.trees.repos[url].Head()))
		}
		return fmt.Sprintf(`{"schema_version": 2, "version_id": "v",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI-lite", "commit": "%s"},
	  "custom_nodes": [%s],
	  "models": [{"source": "%s", "target_path": "$MODELS_DIR/checkpoints/m1.safetensors", "checksum": "sha256:%s"},
	    {"source": "%s", "target_path": "$MODELS_DIR/loras/m2.bin"},
	    {"source": "%s", "target_path": "$COMFY_HOME/custom_nodes/race-node1/ckpt/m3.bin"}]}`,
			core.Head(), strings.Join(nodes, ","), f.ms.Path("m1.safetensors"), sums["m1.safetensors"], f.ms.Path("m2.bin"), f.ms.Path("m3.bin"))
	}
	f.setSpec(f.raceDoc())
	return map[string]string{
		"models/checkpoints/m1.safetensors":      sums["m1.safetensors"],
		"models/loras/m2.bin":                    sums["m2.bin"],
		"custom_nodes/race-node1/ckpt/m3.bin":    sums["m3.bin"],
		"$MODELS_DIR/checkpoints/m1.safetensors": sums["m1.safetensors"],
		"$MODELS_DIR/loras/m2.bin":               sums["m2.bin"],
	}
}

// TestHostsRaceOneFreshVersion: hosts sharing a volume, whose locks do not
// reach each other, realize one fresh version at the same moment. Every
// realize succeeds, every build is file for file the one a realize alone
// makes, and every model holds its bytes; then a realize on one host alone
// is a no-op.
func TestHostsRaceOneFreshVersion(t *testing.T) {
	f := newFixture(t)
	files := f.raceSpec()
	clean := f.host(filepath.Join(f.dir, "clean"))
	res, err := Realize(context.Background(), clean, cloneLock(t, f.lock))
	if err != nil {
		t.Fatalf("clean realize: %v", err)
	}
	want := realizetest.Manifest(t, res.BuildDir)
	for _, tc := range []struct{ hosts, rounds int }{{2, 2}, {4, 1}} {
		t.Run(fmt.Sprintf("%d hosts", tc.hosts), func(t *testing.T) {
			for round := range tc.rounds {
				volume := filepath.Join(t.TempDir(), "volume")
				cfgs := make([]Config, tc.hosts)
				for i := range cfgs {
					cfgs[i] = f.host(volume)
				}
				results, errs := raceRealize(cfgs, f.lock)
				for i := range cfgs {
					if errs[i] != nil {
						t.Fatalf("round %d, host %d: %v", round, i, errs[i])
					}
					if d := realizetest.DiffManifest(realizetest.Manifest(t, results[i].BuildDir), want); d != "" {
						t.Fatalf("round %d, host %d: the build differs from a clean one: %s", round, i, d)
					}
					for rel, sum := range files {
						p := filepath.Join(results[i].BuildDir, rel)
						if shared, ok := strings.CutPrefix(rel, "$MODELS_DIR/"); ok {
							p = filepath.Join(volume, "models", shared)
						}
						if got := realizetest.Digest(t, p); got != sum {
							t.Fatalf("round %d, host %d: %s holds sha256 %s, want %s", round, i, rel, got, sum)
						}
					}
				}
				again, err := Realize(context.Background(), f.host(volume), cloneLock(t, f.lock))
				if err != nil || !again.NoOp {
					t.Fatalf("round %d: a realize alone after the race: noop=%v, %v", round, again != nil && again.NoOp, err)
				}
			}
		})
	}
}

// raceRealize starts one realize per config at once, each with its own
// copy of the lock, as separate hosts would read it.
func raceRealize(cfgs []Config, l *lock.Lock) ([]*Result, []error) {
	results := make([]*Result, len(cfgs))
	errs := make([]error, len(cfgs))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		own := *l
		own.Models = append([]lock.Model(nil), l.Models...)
		wg.Go(func() {
			<-start
			results[i], errs[i] = Realize(ctx, cfg, &own)
		})
	}
	close(start)
	wg.Wait()
	return results, errs
}
