package comfy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/comfy/comfytest"
)

// BenchmarkRunOverhead measures what the client adds to a prompt: submit →
// files on disk, minus the fake's own execution time, for one 1 MB image
// (592×592 noise PNG, stored uncompressed). Every iteration has a new seed so
// nothing is served from the cache. Reports p50-ms and p99-ms.
func BenchmarkRunOverhead(b *testing.B) {
	srv := comfytest.Start(b, comfytest.Options{})
	c := newTestClient(b, srv.URL, nil)
	dest := b.TempDir()
	outDir := srv.Options().OutputDir
	var overheads []time.Duration
	var size int64
	seed := 0
	for b.Loop() {
		seed++
		wf := mustWorkflow(b, fmt.Sprintf(`{
 "1": {"class_type": "FakeNoiseImage", "inputs": {"width": 592, "height": 592, "seed": %d}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}}
}`, seed))
		start := time.Now()
		res, err := c.Run(b.Context(), wf, RunOptions{OutputDir: dest})
		total := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		tm, ok := srv.Timing(res.PromptID)
		if !ok || len(res.Outputs) != 1 {
			b.Fatalf("result %+v, timing %v", res, ok)
		}
		overheads = append(overheads, total-tm.Finished.Sub(tm.Started))
		size = res.Outputs[0].Size
		// Keep both folders small so later iterations cost the same.
		os.Remove(res.Outputs[0].Path)
		os.Remove(filepath.Join(outDir, res.Outputs[0].Filename))
	}
	if size < 1<<20 {
		b.Fatalf("output is %d bytes, want at least 1 MiB", size)
	}
	slices.Sort(overheads)
	pct := func(p float64) float64 {
		i := min(len(overheads)-1, int(p*float64(len(overheads))))
		return float64(overheads[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(size), "output-bytes")
}
