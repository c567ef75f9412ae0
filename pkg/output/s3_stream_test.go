package output

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The S3 uploader's memory is measured as the GCS one's is: in a child
// process (this test binary re-run) uploading to a fake in the parent, so
// the fake's in-memory objects do not count.
const (
	s3StreamChildEnv = "OUTPUT_S3_STREAM_CHILD" // endpoint URL
	s3StreamFileEnv  = "OUTPUT_S3_STREAM_FILE"
)

// TestS3StreamChild is the child side; it does nothing in a normal run.
func TestS3StreamChild(t *testing.T) {
	endpoint := os.Getenv(s3StreamChildEnv)
	if endpoint == "" {
		t.Skip("child process of TestS3StreamingMemory")
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	s, err := NewS3(S3Config{Endpoint: endpoint, Region: testS3Region, Bucket: "outputs", PathStyle: true,
		AccessKeyID: testS3Key, SecretAccessKey: testS3Secret, HTTPClient: &http.Client{Transport: tr}, SignedURLTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	files, err := s.Upload(context.Background(), UploadRequest{JobID: "stream", Files: []Local{{NodeID: "1", Filename: "big.mp4", Path: os.Getenv(s3StreamFileEnv)}}})
	if err != nil {
		t.Fatal(err)
	}
	hwm, err := peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("RESULT sha=%s size=%d hwm=%d secs=%f\n", files[0].SHA256, files[0].Size, hwm, time.Since(start).Seconds())
}

// s3StreamOnce uploads the file at path from a child process to the fake
// and checks what arrived.
func s3StreamOnce(t testing.TB, f *fakeS3, path, wantSHA string, size int64) streamResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestS3StreamChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), s3StreamChildEnv+"="+f.ts.URL, s3StreamFileEnv+"="+path)
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
	data, ctype, ok := f.object(t, "outputs", "comfy/outputs/stream/1_big.mp4")
	got := sha256.Sum256(data)
	if !ok || hex.EncodeToString(got[:]) != wantSHA || ctype != "video/mp4" {
		t.Fatalf("stored object: %d bytes, type %s, sha %x", len(data), ctype, got)
	}
	return r
}

func TestS3StreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 200 MB")
	}
	large := int64(streamSize)
	if raceEnabled {
		large = 64 << 20
	}
	f := newFakeS3(t, nil, "outputs")
	checkFlatMemory(t, large, func(path, sum string, size int64) streamResult { return s3StreamOnce(t, f, path, sum, size) })
}

// BenchmarkS3Upload200MB reports the uploader's throughput and peak RSS
// (go test -bench S3Upload -run '^$' ./pkg/output).
func BenchmarkS3Upload200MB(b *testing.B) {
	f := newFakeS3(b, nil, "outputs")
	path, sum := bigOutput(b, streamSize)
	b.SetBytes(streamSize)
	var peak int64
	b.ResetTimer()
	for range b.N {
		r := s3StreamOnce(b, f, path, sum, streamSize)
		peak = max(peak, r.hwm)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
}
