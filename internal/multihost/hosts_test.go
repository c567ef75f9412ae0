package multihost

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/internal/syncbuf"
	"github.com/runpod-comfy/worker/pkg/realize/realizetest"
	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

// clean realizes the version alone on host 0 and returns its build's
// manifest, what every other build must equal, and how long it took.
func (v *volume) clean(ctx context.Context) (map[string]string, time.Duration) {
	v.t.Helper()
	v.round("clean", "v")
	r := run(v.worker(ctx, 0, "clean", "realize", "v"))
	if r.err != nil {
		v.t.Fatalf("realize alone: %s", r)
	}
	return realizetest.Manifest(v.t, v.build("clean", "v")), r.took
}

// TestKilledHost: a worker killed (SIGKILL) at a random point of its
// realize, while a worker on another host realizes the same fresh version,
// does not make the other fail; afterwards a realize on the killed host
// completes, and the build is the one a realize alone makes.
func TestKilledHost(t *testing.T) {
	v := newVolume(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	want, took := v.clean(ctx)
	rng := rand.New(rand.NewPCG(3, 5))
	// Kill points spread over a realize: fetching and downloading, making
	// the venv, placing models and publishing.
	for r, at := range []float64{0.1, 0.45, 0.8} {
		round := fmt.Sprintf("kill-r%d", r)
		v.round(round, "v")
		victim, other := v.worker(ctx, 0, round, "realize", "v"), v.worker(ctx, 1, round, "realize", "v")
		var wg sync.WaitGroup
		var otherRes result
		wg.Go(func() { otherRes = run(other) })
		delay := time.Duration((at + 0.1*rng.Float64()) * float64(took))
		var killed result
		wg.Go(func() { killed = runKilledAfter(victim, delay) })
		wg.Wait()
		if otherRes.err != nil {
			t.Fatalf("%s: the other host failed while its peer was killed after %v: %s", round, delay, otherRes)
		}
		t.Logf("%s: killed after %v of a %v realize (%v)", round, delay.Round(time.Millisecond), took.Round(time.Millisecond), killed.err)
		after := run(v.worker(ctx, 0, round, "realize", "v"))
		if after.err != nil {
			t.Fatalf("%s: realize on the killed host afterwards: %s", round, after)
		}
		if d := realizetest.DiffManifest(realizetest.Manifest(t, v.build(round, "v")), want); d != "" {
			t.Fatalf("%s: the build differs from a clean one: %s", round, d)
		}
		v.checkModels(round, v.build(round, "v"))
	}
	// Killed alone, then realized again on the same host: it completes.
	v.round("kill-alone", "v")
	runKilledAfter(v.worker(ctx, 0, "kill-alone", "realize", "v"), took/2)
	if r := run(v.worker(ctx, 0, "kill-alone", "realize", "v")); r.err != nil {
		t.Fatalf("realize after a kill: %s", r)
	}
	if d := realizetest.DiffManifest(realizetest.Manifest(t, v.build("kill-alone", "v")), want); d != "" {
		t.Fatalf("the build after a kill differs from a clean one: %s", d)
	}
}

// TestRealizeWhileAnotherHostCollects: one host updates and realizes a
// version again and again while another runs `worker gc` in a loop, with
// no lock between them; earlier builds age past --min-age meanwhile, so
// gc removes them. Every realize succeeds and leaves a complete build.
func TestRealizeWhileAnotherHostCollects(t *testing.T) {
	v := newVolume(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const round = "gc"
	v.firstRealize(ctx, round)
	gcCtx, stopGC := context.WithCancel(ctx)
	var gcRuns int
	var gcErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for gcCtx.Err() == nil {
			r := run(v.worker(gcCtx, 1, round, "gc", "--min-age", "1s", "--git"))
			if r.err != nil && gcCtx.Err() == nil {
				gcErr = fmt.Errorf("%s", r)
				return
			}
			gcRuns++
		}
	})
	store := filepath.Join(v.shared, round, "builds", "comfy-v.builds")
	for i := range 3 {
		v.nodes[2].Commit(fmt.Sprintf("update %d", i), map[string]string{"update.py": fmt.Sprintf("U = %d\n", i)})
		r := run(v.worker(ctx, 0, round, "realize", "v", "--update"))
		if r.err != nil {
			stopGC()
			wg.Wait()
			t.Fatalf("update %d while gc runs: %s", i, r)
		}
		build := v.build(round, "v")
		v.checkModels(round, build)
		if _, err := os.Stat(filepath.Join(build, "custom_nodes", "node2", "update.py")); err != nil {
			t.Fatalf("update %d is not in the build: %v", i, err)
		}
		// The builds no longer current look unused for hours: gc may take them.
		old := time.Now().Add(-2 * time.Hour)
		entries, _ := os.ReadDir(store)
		for _, e := range entries {
			if p := filepath.Join(store, e.Name()); p != build {
				os.Chtimes(p, old, old)
			}
		}
		time.Sleep(1500 * time.Millisecond)
	}
	stopGC()
	wg.Wait()
	if gcErr != nil || gcRuns == 0 {
		t.Fatalf("gc: %d runs, %v", gcRuns, gcErr)
	}
	if r := run(v.worker(ctx, 1, round, "gc", "--min-age", "1s")); r.err != nil {
		t.Fatalf("last gc: %s", r)
	}
	// Stopping the gc loop kills a gc that may be half way through
	// removing a build it had renamed to a private name: that remnant is
	// invisible to realizes and goes once its lease expires (minutes), so
	// only builds under their keys count here.
	entries, _ := os.ReadDir(store)
	var left []string
	for _, e := range entries {
		if !fsutil.IsTempName(e.Name()) {
			left = append(left, e.Name())
		}
	}
	if len(left) != 1 {
		t.Errorf("builds left after gc: %v, want only the current one", left)
	}
	if r := run(v.worker(ctx, 1, round, "realize", "v")); r.err != nil || !strings.Contains(r.out, "already complete") {
		t.Errorf("a realize on the gc host afterwards: %s", r)
	}
}

// TestUpdateWhileServing: host B serves jobs of a version from its build;
// host A updates the version (a node's new commit) meanwhile. B's job in
// flight finishes on the old build, its next job runs on the new one, and
// a new worker uses the new one too.
func TestUpdateWhileServing(t *testing.T) {
	v := newVolume(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const round = "serve"
	v.firstRealize(ctx, round)
	oldBuild := filepath.Base(v.build(round, "v"))

	rp := runpodtest.New(runpodtest.Options{})
	t.Cleanup(rp.Close)
	record := filepath.Join(t.TempDir(), "comfy.json")
	serving := v.worker(ctx, 1, round)
	serving.Env = append(serving.Env, "RUNPOD_VOLUME_WAIT=0", "FAKECOMFY_RECORD="+record)
	for k, val := range rp.Env() {
		serving.Env = append(serving.Env, k+"="+val)
	}
	var stderr syncbuf.Buffer
	serving.Stderr = &stderr
	if err := serving.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		serving.Process.Signal(syscall.SIGTERM)
		serving.Wait()
		if t.Failed() {
			t.Logf("serving worker:\n%s", tail(stderr.String(), 40))
		}
	}()
	slow := `{"1": {"class_type": "FakeSampler", "inputs": {"steps": 40, "step_ms": 50}},
	  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "slow"}}}`
	rp.AddJobs(runpodtest.Job{ID: "before", Input: json.RawMessage(`{"version_id": "v", "workflow": ` + slow + `}`)})
	waitFor(t, 60*time.Second, "the first job's ComfyUI", func() bool { return comfyCwd(record) != "" })
	if got := filepath.Base(comfyBuild(t, record)); got != oldBuild {
		t.Fatalf("ComfyUI runs in %s, want the build %s", got, oldBuild)
	}

	v.nodes[0].Commit("update", map[string]string{"update.py": "U = 1\n"})
	if r := run(v.worker(ctx, 0, round, "realize", "v", "--update")); r.err != nil {
		t.Fatalf("update: %s", r)
	}
	newBuild := filepath.Base(v.build(round, "v"))
	if newBuild == oldBuild {
		t.Fatal("the update made no new build")
	}
	if res := rp.MustResult(t, "before"); res.Error != nil {
		t.Fatalf("the job in flight during the update failed: %s", res.ErrorString())
	}
	rp.AddJobs(runpodtest.Job{ID: "after", Input: json.RawMessage(`{"version_id": "v", "workflow": ` + slow + `}`)})
	if res := rp.MustResult(t, "after"); res.Error != nil {
		t.Fatalf("the job after the update failed: %s", res.ErrorString())
	}
	if got := filepath.Base(comfyBuild(t, record)); got != newBuild {
		t.Errorf("after the update ComfyUI runs in %s, want the new build %s", got, newBuild)
	}
	// A new worker, on a third host, uses the new build.
	r := run(v.worker(ctx, 2, round, "realize", "v"))
	if r.err != nil || !strings.Contains(r.out, "already complete") || !strings.Contains(r.out, newBuild) {
		t.Errorf("a new worker after the update: %s", r)
	}
}

// runKilledAfter runs cmd and kills it with SIGKILL after d, unless it
// finished before.
func runKilledAfter(cmd *exec.Cmd, d time.Duration) result {
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: &out}, &lockedWriter{w: &errs}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{err: err}
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Signal(syscall.SIGKILL) })
	err := cmd.Wait()
	timer.Stop()
	return result{out: out.String(), errs: errs.String(), err: err, took: time.Since(start)}
}

// comfyCwd is the directory the fake ComfyUI last started in.
func comfyCwd(record string) string {
	data, err := os.ReadFile(record)
	if err != nil {
		return ""
	}
	var rec struct {
		Cwd string `json:"cwd"`
	}
	json.Unmarshal(data, &rec)
	return rec.Cwd
}

// comfyBuild is the build on the volume that the recorded ComfyUI runs:
// its working directory, or the build that directory is a local copy of.
func comfyBuild(t *testing.T, record string) string {
	cwd := comfyCwd(record)
	data, err := os.ReadFile(filepath.Join(cwd, ".local-copy.json"))
	if err != nil {
		t.Errorf("ComfyUI runs in %s, not in a local copy of a build", cwd)
		return cwd
	}
	var info struct {
		Source string `json:"source"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("%s: %v", cwd, err)
	}
	return info.Source
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockedWriter serialises writes from a command's output copier and reads
// by the test.
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// firstRealize lays out round's version and realizes it on host 0.
func (v *volume) firstRealize(ctx context.Context, round string) {
	v.t.Helper()
	v.round(round, "v")
	if r := run(v.worker(ctx, 0, round, "realize", "v")); r.err != nil {
		v.t.Fatalf("first realize: %s", r)
	}
}
