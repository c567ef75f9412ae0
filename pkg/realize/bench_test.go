package realize

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/models/modeltest"
	"github.com/runpod-comfy/worker/pkg/pyenv"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// bigFixture is the fixture's version plus extra nodes and checksummed
// models.
func bigFixture(t testing.TB, extraNodes, modelsN, modelSize int) *fixture {
	f := newFixture(t)
	var nodeJSON, modelJSON []string
	for i := 0; i < extraNodes; i++ {
		r := gittest.NewRepo(t)
		r.Commit("n", map[string]string{"__init__.py": fmt.Sprintf("# node %d\n", i), "web/app.js": strings.Repeat("x", 2000)})
		url := fmt.Sprintf("https://github.com/o/extra%d", i)
		f.trees.repos[url] = r
		nodeJSON = append(nodeJSON, fmt.Sprintf(`{"repo": "%s", "commit": "%s"}`, url, r.Head()))
	}
	for i := 0; i < modelsN; i++ {
		name := fmt.Sprintf("m%02d.safetensors", i)
		sum := f.addModel(name, modelSize)
		modelJSON = append(modelJSON, fmt.Sprintf(`{"source": "%s", "target_path": "$MODELS_DIR/loras/%s", "checksum": "sha256:%s"}`, f.ms.Path(name), name, sum))
	}
	doc := f.specDoc(strings.Join(modelJSON, ","))
	doc = strings.Replace(doc, `"custom_nodes": [`, `"custom_nodes": [`+strings.Join(nodeJSON, ",")+",", 1)
	f.setSpec(doc)
	return f
}

// TestNoopRealizeReadsNoModel: a realized version is recognised from stat
// data alone. The proof: every model file is overwritten with other bytes
// of the same size and mtime, and realize still finds nothing to do.
func TestNoopRealizeReadsNoModel(t *testing.T) {
	f := bigFixture(t, 8, 20, 64<<10) // 10 nodes in all, 20 models
	f.realize()
	for _, lm := range f.lock.Models {
		p := filepath.Join(f.models, strings.TrimPrefix(lm.TargetPath, "$MODELS_DIR/"))
		st, _ := os.Stat(p)
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, make([]byte, st.Size()), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, st.ModTime(), st.ModTime())
	}
	start := time.Now()
	res := f.realize()
	if !res.NoOp {
		t.Fatalf("not a no-op: %s", actions(res))
	}
	if el := time.Since(start); el > 50*time.Millisecond {
		t.Errorf("no-op realize of 10 nodes + 20 models took %v (budget 50 ms)", el)
	}
}

// BenchmarkNoopRealize: realize of a complete version with 10 nodes and 20
// models (budget: under 50 ms, no model file read).
func BenchmarkNoopRealize(b *testing.B) {
	f := bigFixture(b, 8, 20, 1<<20)
	f.realize()
	cfg := f.config()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Realize(context.Background(), cfg, f.lock)
		if err != nil || !res.NoOp {
			b.Fatalf("noop=%v err=%v", res != nil && res.NoOp, err)
		}
	}
}

// BenchmarkColdRealize: 10 nodes + 10 models (8 MiB each) from loopback
// servers (git over smart HTTP, models over HTTP) into an empty cache,
// against a serial shell script doing `git clone --depth 1` and `curl` for
// the same items, measured in the same run. Realize also makes the build's
// venv (seconds of ensurepip), which the script does not: "fetch" is the
// wall time of realize's fetching phase (trees and models, concurrent),
// and the venv's own creation time is reported beside it.
func BenchmarkColdRealize(b *testing.B) {
	python := pyenvtest.Python(b)
	srv := gittest.NewServer(b)
	core := gittest.NewRepo(b)
	core.Commit("core", map[string]string{"main.py": "", "comfy/x.py": strings.Repeat("# c\n", 500)})
	coreURL := srv.Add("github.com/comfyanonymous/ComfyUI", core)
	var repos, urls, nodeJSON, modelJSON []string
	for i := 0; i < 10; i++ {
		r := gittest.NewRepo(b)
		files := map[string]string{"__init__.py": ""}
		for j := 0; j < 50; j++ {
			files[fmt.Sprintf("lib/f%02d.py", j)] = strings.Repeat(fmt.Sprintf("# %d %d\n", i, j), 200)
		}
		r.Commit("n", files)
		u := srv.Add(fmt.Sprintf("github.com/o/n%d", i), r)
		repos = append(repos, u)
		nodeJSON = append(nodeJSON, fmt.Sprintf(`{"repo": "%s", "commit": "%s"}`, u, r.Head()))
	}
	ms := modeltest.NewServer()
	b.Cleanup(ms.Close)
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("m%d.bin", i)
		ms.Add("/"+name, []byte(strings.Repeat(name, (8<<20)/len(name))))
		urls = append(urls, ms.Path(name))
		modelJSON = append(modelJSON, fmt.Sprintf(`{"source": "%s", "target_path": "$MODELS_DIR/loras/%s"}`, ms.Path(name), name))
	}
	doc := fmt.Sprintf(`{"schema_version": 2, "version_id": "v", "comfy": {"repo": "%s", "commit": "%s"}, "custom_nodes": [%s], "models": [%s]}`,
		coreURL, core.Head(), strings.Join(nodeJSON, ","), strings.Join(modelJSON, ","))
	s, err := spec.Decode([]byte(doc), "")
	if err != nil {
		b.Fatal(err)
	}
	l, _, err := lock.Resolve(context.Background(), s, nil, nil, lock.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var ours, fetch, venv, baseline time.Duration
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		store, err := models.New(models.Config{Root: filepath.Join(dir, "cache")})
		if err != nil {
			b.Fatal(err)
		}
		cfg := Config{
			BuildDir: filepath.Join(dir, "builds", "comfy-v"), ModelsDir: filepath.Join(dir, "models"), Jobs: 8,
			Trees:  &gitsrc.Trees{Client: gitsrc.NewClient(gitsrc.Options{}), CacheDir: filepath.Join(dir, "cache", "git")},
			Models: store, Python: pyenv.Config{Python: python, UV: pyenv.UVNever, Env: pyenvtest.IsolatedEnv()},
		}
		start := time.Now()
		res, err := Realize(context.Background(), cfg, l)
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		var phase time.Duration
		for _, st := range res.Steps {
			if (st.Name == "core" || st.Name == "custom_nodes" || st.Name == "models") && st.Took > phase {
				phase = st.Took
			}
		}
		fetch += phase
		vstart := time.Now()
		if out, err := exec.Command(python, "-m", "venv", filepath.Join(dir, "venv-alone")).CombinedOutput(); err != nil {
			b.Fatalf("venv: %v\n%s", err, out)
		}
		venv += time.Since(vstart)

		sdir := b.TempDir()
		var sh strings.Builder
		fmt.Fprintf(&sh, "set -e\ncd %s\ngit clone -q --depth 1 %s core\n", sdir, coreURL)
		for k, u := range repos {
			fmt.Fprintf(&sh, "git clone -q --depth 1 %s n%d\n", u, k)
		}
		for k, u := range urls {
			fmt.Fprintf(&sh, "curl -sf -o m%d.bin %s\n", k, u)
		}
		cmd := exec.Command("bash", "-c", sh.String())
		cmd.Env = append(gittest.Environ(), pyenvtest.IsolatedEnv()...)
		start = time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("baseline: %v\n%s", err, out)
		}
		baseline += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(float64(ours.Milliseconds())/n, "realize-ms/op")
	b.ReportMetric(float64(fetch.Milliseconds())/n, "fetch-ms/op")
	b.ReportMetric(float64(venv.Milliseconds())/n, "venv-alone-ms/op")
	b.ReportMetric(float64(baseline.Milliseconds())/n, "serial-script-ms/op")
	b.ReportMetric(float64(fetch)/float64(baseline), "fetch/script")
	b.ReportMetric(float64(ours)/float64(baseline+venv), "realize/(script+venv)")
}
