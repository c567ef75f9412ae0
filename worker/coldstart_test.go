package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/netvol"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

// coldFixture is a version whose ComfyUI imports a storm of modules at
// start, as a real one does: a generated package tree of coreModules in
// the core (gen/pNN/mNNN.py, each package importing its modules) and a
// wheel of venvModules in the venv, all imported by main.py before it
// execs the fake ComfyUI. It is realized into vol (the volume's backing
// directory), which also packs its snapshot; ids are the versions, each a
// build of its own.
func coldFixture(tb testing.TB, e *testEnv, vol string, coreModules, venvModules int, ids ...string) {
	tb.Helper()
	pyenvtest.Python(tb)
	files := genPackage("gen", coreModules)
	files["main.py"] = `import os, sys, time
t0 = time.time()
import gen, bigdep
sys.stderr.write("main.py: imported the module tree in %.2fs\n" % (time.time() - t0))
exe = os.environ.get('FAKE_COMFY_BIN')
if exe:
    os.execv(exe, [exe] + sys.argv)
print('no fake')
`
	files["requirements.txt"] = "bigdep\n"
	files["comfy/cli_args.py"] = "# --database-url\n"
	core := e.publish("comfyanonymous/ComfyUI")
	core.Commit("core", files)
	wheels := filepath.Join(e.dir, "wheels")
	if _, err := (pyenvtest.Wheel{Name: "bigdep", Version: "1.0", Files: genPackage("bigdep", venvModules)}).Build(wheels); err != nil {
		tb.Fatal(err)
	}
	for k, v := range volumeVars(vol) {
		e.vars[k] = v
	}
	e.vars["COMFY_WHEELS_DIR"] = wheels
	for _, id := range ids {
		e.writeSpec(id, `{"schema_version": 2, "version_id": "`+id+`",
		  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main"}}`)
		e.mustRun("realize", id)
	}
	e.vars["COMFY_OFFLINE"] = "1" // workers use the lock and the build only
}

// genPackage writes a package of n modules in subpackages of 100. Each
// module is about 4 KB of code, a node class and helpers: smaller than the
// average module of the standard library or of a typical site-packages, so
// the storm is of lookups and opens more than of Python's own work.
func genPackage(name string, n int) map[string]string {
	files := map[string]string{}
	var top strings.Builder
	for p := 0; p*100 < n; p++ {
		sub := fmt.Sprintf("p%03d", p)
		fmt.Fprintf(&top, "from . import %s\n", sub)
		var init strings.Builder
		for m := p * 100; m < min(n, (p+1)*100); m++ {
			mod := fmt.Sprintf("m%05d", m)
			fmt.Fprintf(&init, "from . import %s\n", mod)
			files[fmt.Sprintf("%s/%s/%s.py", name, sub, mod)] = genModule(m)
		}
		files[fmt.Sprintf("%s/%s/__init__.py", name, sub)] = init.String()
	}
	files[name+"/__init__.py"] = top.String()
	return files
}

func genModule(m int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `"""Generated module %[1]d: a node as custom nodes write them."""
import math
import os

CONSTANT_%[1]d = %[1]d
NAMES_%[1]d = [%[2]q, %[3]q, %[4]q]


class Node%[1]d:
    """Scales, offsets and clamps a value.

    The methods below do little: what matters is that Python has a
    module's worth of code to unmarshal and run at import.
    """

    CATEGORY = "generated/%[1]d"
    RETURN_TYPES = ("INT", "FLOAT")
    INPUT_TYPES = {"required": {"value": ("INT", {"default": %[1]d, "min": 0, "max": 1 << 20}),
                                "scale": ("FLOAT", {"default": 1.0, "step": 0.01})},
                   "optional": {"label": ("STRING", {"default": "m%[1]d"})}}

    def __init__(self, scale=1.0, offset=%[1]d):
        self.scale = scale
        self.offset = offset
        self.history = []
`, m, fmt.Sprintf("a%d", m), fmt.Sprintf("b%d", m), fmt.Sprintf("c%d", m))
	for j := range 8 {
		fmt.Fprintf(&b, `
    def step_%[1]d(self, value, limit=None):
        """Step %[1]d of the computation."""
        result = value * self.scale + self.offset + %[1]d
        if limit is not None and result > limit:
            result = limit
        self.history.append((%[1]d, result))
        return math.floor(result) if result >= 0 else -math.floor(-result)
`, j)
	}
	fmt.Fprintf(&b, `

def helper_%[1]d(path, *parts):
    """Joins path and parts below this module's folder."""
    return os.path.join(path, "m%[1]d", *parts)


def describe_%[1]d(node):
    return {"name": "Node%[1]d", "scale": node.scale, "offset": node.offset, "steps": len(node.history)}
`, m)
	return b.String()
}

// volumeVars point the cache, builds and models into vol.
func volumeVars(vol string) map[string]string {
	return map[string]string{
		"COMFY_CACHE_ROOT":  filepath.Join(vol, "cache"),
		"COMFY_BUILDS_ROOT": filepath.Join(vol, "builds"),
		"MODELS_DIR":        filepath.Join(vol, "models"),
	}
}

// coldRun starts a fresh worker and runs one job per version, one after
// another: the first waiting when the worker starts (or, with ready, once
// ready reports true), each next one queued when the previous result came.
// It returns, per job, the time to its result from the worker's start
// (first job) or from its queueing, and the worker's stderr; stages gets
// each job's timings_ms when not nil.
func coldRun(tb testing.TB, e *testEnv, extra map[string]string, ready func() bool, versions ...string) ([]time.Duration, string) {
	return coldRunStages(tb, e, extra, ready, nil, versions...)
}

func coldRunStages(tb testing.TB, e *testEnv, extra map[string]string, ready func() bool, stages *[]map[string]float64, versions ...string) ([]time.Duration, string) {
	tb.Helper()
	bin, fake := binaries(tb)
	rp := runpodtest.New(runpodtest.Options{})
	defer rp.Close()
	wf := `{"1": {"class_type": "FakeNoiseImage", "inputs": {"width": 64, "height": 64, "seed": 7}},
	  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cold"}}}`
	if ready == nil {
		rp.AddJobs(runpodtest.Job{ID: "job0", Input: jobInput(versions[0], wf, "")})
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "FAKE_COMFY_BIN=" + fake, "RUNPOD_VOLUME_WAIT=0",
		"COMFY_SCRATCH_DIR=" + filepath.Join(tb.TempDir(), "scratch")}
	for _, m := range []map[string]string{e.vars, rp.Env(), extra} {
		for k, v := range m {
			env = append(env, k+"="+v)
		}
	}
	cmd := exec.Command(bin)
	cmd.Env, cmd.Dir = env, e.dir
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out []time.Duration
	for i, v := range versions {
		id := fmt.Sprintf("job%d", i)
		queued := start
		if i > 0 || ready != nil {
			for ready != nil && !ready() && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			queued = time.Now()
			rp.AddJobs(runpodtest.Job{ID: id, Input: jobInput(v, wf, "")})
		}
		res, err := rp.WaitResult(ctx, id)
		if err != nil || res.Error != nil {
			tb.Fatalf("%s for %s: %v %s\nworker stderr:\n%s", id, v, err, res.Error, tail(stderr.String(), 40))
		}
		out = append(out, res.Time.Sub(queued))
		if stages != nil {
			var r struct {
				Timings map[string]float64 `json:"timings_ms"`
			}
			json.Unmarshal(res.Output, &r)
			*stages = append(*stages, r.Timings)
		}
		ready = nil
	}
	return out, stderr.String()
}

// TestColdStartFromVolume: a fresh worker whose builds are on a network
// volume runs its first job from a local copy: ComfyUI's and Python's
// imports open nothing on the volume, where running from the volume opens
// every module.
func TestColdStartFromVolume(t *testing.T) {
	e := newTestEnv(t)
	backing := t.TempDir()
	coldFixture(t, e, backing, 300, 200, "demo")
	vol := netvol.MountT(t, backing, "", netvol.Options{})
	for k, v := range volumeVars(vol.Dir()) {
		e.vars[k] = v
	}
	for _, tc := range []struct {
		name     string
		localDir string
		copied   bool
	}{
		{"local copy", filepath.Join(t.TempDir(), "local"), true},
		{"copies off", "off", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol.ResetStats()
			took, stderr := coldRun(t, e, map[string]string{"COMFY_LOCAL_DIR": tc.localDir}, nil, "demo")
			opens := vol.Stats().Opens
			t.Logf("first job after %v, %d files opened on the volume (%+v)", took[0].Round(time.Millisecond), opens, vol.Stats())
			if got := strings.Contains(stderr, "build copied to local disk"); got != tc.copied {
				t.Errorf("copied to local disk: %v, want %v", got, tc.copied)
			}
			// 500 modules, each a .pyc opened at import.
			if tc.copied && opens > 50 || !tc.copied && opens < 500 {
				t.Errorf("%d files opened on the volume", opens)
			}
		})
	}
	// With a default version, the copy is made before the first job.
	t.Run("default version", func(t *testing.T) {
		local := filepath.Join(t.TempDir(), "local")
		copied := func() bool {
			m, _ := filepath.Glob(filepath.Join(local, "demo-*", ".local-copy.json"))
			return len(m) == 1
		}
		_, stderr := coldRun(t, e, map[string]string{"COMFY_LOCAL_DIR": local, "COMFY_VERSION_NAME": "demo"}, copied, "demo")
		if i, j := strings.Index(stderr, "build copied to local disk"), strings.Index(stderr, "job taken"); i < 0 || j < i {
			t.Errorf("the copy was not made before the job was taken (log offsets %d, %d)", i, j)
		}
	})
}

// BenchmarkColdStart times a fresh worker from its start to its first
// job's result, for a version that imports coreModules + venvModules at
// start, with the build on local disk (run where it is) and on a
// simulated network volume with 0.5, 1 and 2 ms per metadata operation
// (run from a local copy, the snapshot made by the realize: a version
// realized by another host). "vol-1ms-nosnap" is a build without a
// snapshot (realized by an earlier release): the worker packs it while it
// copies it. Each worker then gets a job for a second version of the same
// size: a warm worker switching versions ("switch"). Each round runs every
// setup once, interleaved, so that a busy machine slows them alike; the
// medians and the median of each round's ratio to local disk are reported.
// Run it with a fast local disk under TMPDIR:
//
//	TMPDIR=/dev/shm go test ./worker -run '^$' -bench ColdStart/1x -benchtime 5x
//
// At 10x the files only local disk and 1 ms are timed, first jobs only:
// whether the ratio holds as the build grows.
func BenchmarkColdStart(b *testing.B) {
	type setup struct {
		name   string
		delay  time.Duration // <0: the build on local disk
		noSnap bool
	}
	all := []setup{{"local", -1, false}, {"vol-0.5ms", 500 * time.Microsecond, false}, {"vol-1ms", time.Millisecond, false},
		{"vol-2ms", 2 * time.Millisecond, false}, {"vol-1ms-nosnap", time.Millisecond, true}}
	for _, size := range []struct {
		name       string
		core, venv int
		setups     []setup
		versions   []string
	}{
		{"1x", 5000, 2000, all, []string{"demo", "other"}},
		{"10x", 50000, 20000, []setup{all[0], all[2]}, []string{"demo"}},
	} {
		b.Run(size.name, func(b *testing.B) {
			e := newTestEnvTB(b)
			backing := b.TempDir()
			coldFixture(b, e, backing, size.core, size.venv, size.versions...)
			snaps, _ := filepath.Glob(filepath.Join(backing, "cache", "snapshots", "demo-*.snap"))
			if len(snaps) != 1 {
				b.Fatalf("snapshots of demo: %v", snaps)
			}
			setups := size.setups
			vars := map[string]map[string]string{}
			for _, s := range setups {
				dir := backing
				if s.delay >= 0 {
					dir = netvol.MountT(b, backing, "", netvol.Options{MetaDelay: s.delay}).Dir()
				}
				vars[s.name] = volumeVars(dir)
			}
			first, switched := map[string][]time.Duration{}, map[string][]time.Duration{}
			stages := map[string][]map[string]float64{} // the first jobs' timings_ms
			for b.Loop() {
				for _, s := range setups {
					env := map[string]string{"COMFY_LOCAL_DIR": filepath.Join(b.TempDir(), "local")}
					if s.delay < 0 {
						env["COMFY_LOCAL_DIR"] = "off"
					}
					for k, v := range vars[s.name] {
						env[k] = v
					}
					if s.noSnap {
						must(b, os.Rename(snaps[0], snaps[0]+".away"))
					}
					var st []map[string]float64
					took, _ := coldRunStages(b, e, env, nil, &st, size.versions...)
					stages[s.name] = append(stages[s.name], st[0])
					if s.noSnap {
						must(b, os.Rename(snaps[0]+".away", snaps[0])) // over the one the worker packed
					}
					first[s.name] = append(first[s.name], took[0])
					if len(took) > 1 {
						switched[s.name] = append(switched[s.name], took[1])
					}
				}
			}
			// The best run is the one the machine's other tenants disturbed
			// least; the median of the rounds' ratios is less sensitive to a
			// load that changes between rounds than a ratio of medians.
			for _, s := range setups {
				b.ReportMetric(median(first[s.name]).Seconds(), s.name+"-s")
				b.ReportMetric(slices.Min(first[s.name]).Seconds(), s.name+"-best-s")
				if len(switched[s.name]) > 0 {
					b.ReportMetric(median(switched[s.name]).Seconds(), s.name+"-switch-s")
					b.ReportMetric(slices.Min(switched[s.name]).Seconds(), s.name+"-switch-best-s")
				}
				if s.delay >= 0 {
					b.ReportMetric(medianRatio(first[s.name], first["local"]), s.name+"-ratio")
					b.ReportMetric(slices.Min(first[s.name]).Seconds()/slices.Min(first["local"]).Seconds(), s.name+"-best-ratio")
				}
			}
			b.Logf("first jobs: %v", first)
			b.Logf("switches: %v", switched)
			for _, s := range setups {
				var realize, local, start []time.Duration
				for _, t := range stages[s.name] {
					realize = append(realize, time.Duration(t["realize"]*float64(time.Millisecond)))
					local = append(local, time.Duration(t["local"]*float64(time.Millisecond)))
					start = append(start, time.Duration(t["start"]*float64(time.Millisecond)))
				}
				b.Logf("%s first job, median stages: realize %v, local copy %v, ComfyUI start %v", s.name,
					median(realize).Round(time.Millisecond), median(local).Round(time.Millisecond), median(start).Round(time.Millisecond))
			}
		})
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// medianRatio is the median of the rounds' ratios a[i]/b[i].
func medianRatio(a, b []time.Duration) float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i].Seconds() / b[i].Seconds()
	}
	sort.Float64s(r)
	return r[len(r)/2]
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
