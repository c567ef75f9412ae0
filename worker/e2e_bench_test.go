package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

// TestIdleWorkerRSS: a serverless worker waiting for jobs stays small.
func TestIdleWorkerRSS(t *testing.T) {
	e := newTestEnv(t)
	rp := runpodtest.New(runpodtest.Options{})
	t.Cleanup(rp.Close)
	wp := startWorker(t, e, rp, nil)
	time.Sleep(2 * time.Second) // a few long polls and heartbeats
	rss := rssKB(t, wp.cmd.Process.Pid)
	t.Logf("idle worker RSS: %.1f MB", float64(rss)/1024)
	if rss > 30*1024 {
		t.Errorf("idle RSS %d kB is over 30 MB", rss)
	}
}

func rssKB(t testing.TB, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// BenchmarkJobOverheadE2E: job taken -> result posted, through the real
// binary, for one ~1 MB PNG returned as base64, minus ComfyUI's own time
// (queue + execute as the worker measured them). "Taken" is when the fake
// job API handed the job out (the worker's long poll is already waiting);
// "posted" is when the result's last byte arrived. One job at a time, and
// the benchmark decodes a result only after it has arrived, so the fake's
// own work never competes with the job being measured.
func BenchmarkJobOverheadE2E(b *testing.B) {
	e := newTestEnvTB(b)
	versionFixture(b, e)
	rp := runpodtest.New(runpodtest.Options{})
	b.Cleanup(rp.Close)
	startWorker(b, e, rp, nil)
	wf := `{"1": {"class_type": "FakeNoiseImage", "inputs": {"width": 600, "height": 600, "seed": 7}},
	  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}}}`
	// Warm up: realize and start ComfyUI.
	rp.AddJobs(runpodtest.Job{ID: "warm", Input: jobInput("demo", wf, "")})
	rp.MustResult(b, "warm")
	n := max(b.N, 30)
	var overheads []time.Duration
	var size int
	b.ResetTimer()
	for i := range n {
		id := fmt.Sprintf("b%d", i)
		rp.AddJobs(runpodtest.Job{ID: id, Input: jobInput("demo", strings.Replace(wf, `"seed": 7`, fmt.Sprintf(`"seed": %d`, i+10), 1), "")})
		res := rp.MustResult(b, id)
		var taken time.Time
		for _, tr := range rp.Takes() {
			if tr.Status == 200 && tr.Answered.Before(res.Time) {
				taken = tr.Answered
			}
		}
		var out struct {
			Outputs []struct {
				Size int `json:"size"`
			} `json:"outputs"`
			Timings map[string]float64 `json:"timings_ms"`
		}
		if err := json.Unmarshal(res.Output, &out); err != nil || res.Error != nil {
			b.Fatalf("%s: %s %s", id, res.Error, res.Output)
		}
		size = out.Outputs[0].Size
		comfy := time.Duration((out.Timings["queue"] + out.Timings["execute"]) * float64(time.Millisecond))
		overheads = append(overheads, res.Time.Sub(taken)-comfy)
		if os.Getenv("BENCH_DEBUG") != "" {
			inside := time.Duration(out.Timings["total"]*float64(time.Millisecond)) - comfy
			b.Logf("%s timings %v", id, out.Timings)
			b.Logf("%s e2e overhead %v, inside the handler %v", id, res.Time.Sub(taken)-comfy, inside)
		}
	}
	b.StopTimer()
	sort.Slice(overheads, func(i, j int) bool { return overheads[i] < overheads[j] })
	b.ReportMetric(float64(overheads[len(overheads)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(overheads[len(overheads)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(size)/(1<<20), "output-MiB")
}
