package output

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// The uploader's memory is measured in a child process (this test binary
// re-run), so neither the fake server, which keeps objects in memory, nor
// other tests' allocations count.
const (
	streamChildEnv = "OUTPUT_GCS_STREAM_CHILD" // endpoint URL
	streamFileEnv  = "OUTPUT_GCS_STREAM_FILE"
	// streamSize is the output size, and rssBudget its limit on
	// the uploader's peak RSS while streaming it.
	streamSize = 200 << 20
	rssBudget  = 100 << 20
	// growthBudget is how much more a far larger file may take at peak:
	// noise, never the file.
	growthBudget = 16 << 20
)

// TestGCSStreamChild is the child side; it does nothing in a normal run.
func TestGCSStreamChild(t *testing.T) {
	endpoint := os.Getenv(streamChildEnv)
	if endpoint == "" {
		t.Skip("child process of TestGCSStreamingMemory")
	}
	ctx := context.Background()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client, err := storage.NewClient(ctx, option.WithEndpoint(endpoint), option.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	g, err := NewGCS(ctx, GCSConfig{Bucket: "outputs", Client: client})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	files, err := g.Upload(ctx, UploadRequest{JobID: "stream", Files: []Local{{NodeID: "1", Filename: "big.mp4", Path: os.Getenv(streamFileEnv)}}})
	if err != nil {
		t.Fatal(err)
	}
	hwm, err := peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("RESULT sha=%s size=%d hwm=%d secs=%f\n", files[0].SHA256, files[0].Size, hwm, time.Since(start).Seconds())
}

// peakRSS is the process's high-water resident set size, in bytes.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

type streamResult struct {
	sha  string
	size int64
	hwm  int64
	secs float64
}

// streamOnce uploads a streamSize file of pseudo-random bytes from a child
// process to a fake on 127.0.0.1 and checks what arrived.
func streamOnce(t testing.TB, f *fakeGCS, path, wantSHA string, size int64) streamResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGCSStreamChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), streamChildEnv+"="+f.ts.URL+"/storage/v1/", streamFileEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var r streamResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			if _, err := fmt.Sscanf(rest, "sha=%s size=%d hwm=%d secs=%f", &r.sha, &r.size, &r.hwm, &r.secs); err != nil {
				t.Fatalf("parse %q: %v", rest, err)
			}
		}
	}
	if r.sha != wantSHA || r.size != size {
		t.Fatalf("child reported sha %s size %d, want %s %d\n%s", r.sha, r.size, wantSHA, size, out)
	}
	obj, err := f.srv.GetObject("outputs", "comfy/outputs/stream/1_big.mp4")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.Sum256(obj.Content)
	if hex.EncodeToString(got[:]) != wantSHA || obj.ContentType != "video/mp4" {
		t.Fatalf("stored object: %d bytes, type %s, sha %x", len(obj.Content), obj.ContentType, got)
	}
	return r
}

// bigOutput writes a file of size bytes (whole MiB) whose content is not all zeros
// (a repeated random block, cheap to make) and returns its path and sha256.
func bigOutput(t testing.TB, size int64) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.mp4")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	block := randomBytes(t, 1<<20)
	h := sha256.New()
	w := io.MultiWriter(fh, h)
	for i := range size >> 20 {
		block[0] = byte(i) // no two megabytes alike
		if _, err := w.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func TestGCSStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 200 MB")
	}
	// The fake re-hashes its whole upload buffer per chunk, which the race
	// detector makes quadratic in time: under -race the large file is
	// smaller, and the growth check carries the test.
	large := int64(streamSize)
	if raceEnabled {
		large = 64 << 20
	}
	f := newFakeGCS(t, "outputs")
	checkFlatMemory(t, large, func(path, sum string, size int64) streamResult { return streamOnce(t, f, path, sum, size) })
}

// checkFlatMemory streams a 16 MB file and a large one through upload and
// fails when the uploader's peak RSS grows with the file (it buffers it)
// or, on a normal build, passes rssBudget. The race detector's shadow
// memory roughly doubles every resident byte, so the absolute budget is
// checked on the normal build only.
func checkFlatMemory(t *testing.T, large int64, upload func(path, sum string, size int64) streamResult) {
	var res [2]streamResult
	for i, size := range []int64{16 << 20, large} {
		path, sum := bigOutput(t, size)
		res[i] = upload(path, sum, size)
		t.Logf("streamed %d MB in %.1fs; uploader peak RSS %.1f MB (race=%v)",
			size>>20, res[i].secs, float64(res[i].hwm)/(1<<20), raceEnabled)
	}
	if grew := res[1].hwm - res[0].hwm; grew > growthBudget {
		t.Errorf("peak RSS grew by %.1f MB from a 16 MB to a %d MB file: the upload buffers the file",
			float64(grew)/(1<<20), large>>20)
	}
	if !raceEnabled && res[1].hwm > rssBudget {
		t.Errorf("peak RSS %.1f MB streaming %d MB, over the %d MB budget",
			float64(res[1].hwm)/(1<<20), large>>20, rssBudget>>20)
	}
}

// BenchmarkGCSUpload200MB reports the uploader's throughput and peak RSS
// (go test -bench GCSUpload -run '^$' ./pkg/output).
func BenchmarkGCSUpload200MB(b *testing.B) {
	f := newFakeGCS(b, "outputs")
	path, sum := bigOutput(b, streamSize)
	b.SetBytes(streamSize)
	var peak int64
	b.ResetTimer()
	for range b.N {
		r := streamOnce(b, f, path, sum, streamSize)
		peak = max(peak, r.hwm)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
}
