package models

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/models/modeltest"
)

// settle lets the file system finish with the previous run (its write-back,
// and the discard of the deleted 1 GiB file, which a volume mounted with
// "discard" performs at the next journal commit) before the next one is
// timed, so no run pays for its predecessor.
func settle(b *testing.B) {
	b.Helper()
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		b.Fatalf("sync: %v\n%s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
}

// BenchmarkDownload1GiB downloads one 1 GiB file from a loopback server
// with Fetch (sha256 included, in a separate process so its peak RSS can
// be measured) and with `curl -s -o`, alternating five times each, and
// reports the best and median throughputs, their ratios and the peak RSS
// of each. Run it with:
//
//	go test -run '^$' -bench Download1GiB -benchtime 1x ./pkg/models/
func BenchmarkDownload1GiB(b *testing.B) {
	if _, err := exec.LookPath("curl"); err != nil {
		b.Skip("curl is not installed")
	}
	const size = 1 << 30
	dir := b.TempDir()
	src := filepath.Join(dir, "src.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	// Sparse: the server reads zeros from the page cache, never the disk.
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	srv := modeltest.NewServer()
	defer srv.Close()
	if err := srv.AddFile("/big.safetensors", src); err != nil {
		b.Fatal(err)
	}
	url := srv.Path("big.safetensors")

	run := func(cmd *exec.Cmd) (time.Duration, int64) {
		b.Helper()
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", cmd.Args[0], err, out)
		}
		d := time.Since(start)
		return d, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	}
	// A first read makes the server's page cache hold the file, so the
	// first measured run does not pay for it.
	if _, err := exec.Command("curl", "-s", "-f", "-o", "/dev/null", url).CombinedOutput(); err != nil {
		b.Fatal(err)
	}
	var curlDur, curlSyncDur, workerDur []time.Duration
	var curlRSS, workerRSS int64
	b.ResetTimer()
	for i := range b.N * 5 {
		out := filepath.Join(dir, "curl.out")
		d, rss := run(exec.Command("curl", "-s", "-f", "-o", out, url))
		curlDur, curlRSS = append(curlDur, d), max(curlRSS, rss)
		// Fetch fsyncs before it commits a blob; curl does not. curl plus
		// `sync -d` is the like-for-like baseline, reported beside.
		ds, _ := run(exec.Command("sync", "-d", out))
		curlSyncDur = append(curlSyncDur, d+ds)
		os.Remove(out)
		settle(b)

		root := filepath.Join(dir, fmt.Sprintf("store%d", i))
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.benchtime=1x")
		cmd.Env = helperEnv(root, url, "")
		d, rss = run(cmd)
		workerDur, workerRSS = append(workerDur, d), max(workerRSS, rss)
		os.RemoveAll(root)
		settle(b)
	}
	b.StopTimer()
	// Best and median of the runs: the box is shared with the server and
	// with the write-back of earlier runs.
	mbps := func(ds []time.Duration, median bool) float64 {
		slices.Sort(ds)
		d := ds[0]
		if median {
			d = ds[len(ds)/2]
		}
		return float64(size) / (1 << 20) / d.Seconds()
	}
	c, w := mbps(curlDur, false), mbps(workerDur, false)
	cm, wm := mbps(curlDur, true), mbps(workerDur, true)
	b.ReportMetric(c, "curl_best_MiB/s")
	b.ReportMetric(w, "worker_best_MiB/s")
	b.ReportMetric(w/c, "worker/curl_best")
	b.ReportMetric(wm/cm, "worker/curl_median")
	b.ReportMetric(wm/mbps(curlSyncDur, true), "worker/curl+fsync_median")
	b.ReportMetric(float64(workerRSS)/(1<<20), "worker_maxrss_MiB")
	b.ReportMetric(float64(curlRSS)/(1<<20), "curl_maxrss_MiB")
	b.Logf("sorted runs: curl %v; curl+fsync %v; worker %v", curlDur, curlSyncDur, workerDur)
}
