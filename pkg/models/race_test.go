package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/models/modeltest"
)

// TestHostsRaceOneStore: stores whose locks do not reach each other (hosts
// sharing a volume, here with locks off) fetch the same models into one
// store at the same moment, with and without a known checksum. Each gets
// the right blob; a download may be duplicated, never corrupted, and no
// partial file is left behind.
func TestHostsRaceOneStore(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	pinned, pinnedDigest := testData(3<<20, 31)
	tofu, tofuDigest := testData(2<<20, 32)
	srv.Add("/pinned", pinned)
	srv.Add("/tofu", tofu)
	srv.Throttle("/pinned", 24<<20)
	srv.Throttle("/tofu", 24<<20)
	for _, hosts := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d hosts", hosts), func(t *testing.T) {
			for round := range 5 {
				root := t.TempDir()
				before := len(srv.Requests("/pinned")) + len(srv.Requests("/tofu"))
				var wg sync.WaitGroup
				blobs := make([][2]Blob, hosts)
				errs := make([][2]error, hosts)
				for i := range hosts {
					env := newTestStore(t, func(c *Config) { c.Root, c.Locks = root, cache.Locks{Off: true} })
					ctx := testCtx(t)
					for k, req := range []Request{{Source: srv.Path("pinned"), SHA256: pinnedDigest}, {Source: srv.Path("tofu")}} {
						wg.Go(func() { blobs[i][k], errs[i][k] = env.st.Fetch(ctx, req) })
					}
				}
				wg.Wait()
				for i := range hosts {
					for k, want := range []string{pinnedDigest, tofuDigest} {
						if errs[i][k] != nil {
							t.Fatalf("round %d, host %d, model %d: %v", round, i, k, errs[i][k])
						}
						if got := fileDigest(t, blobs[i][k].Path); blobs[i][k].SHA256 != want || got != want {
							t.Fatalf("round %d, host %d, model %d: blob %s holds %s, want %s", round, i, k, blobs[i][k].SHA256, got, want)
						}
					}
				}
				if left := storeFiles(t, newTestStore(t, func(c *Config) { c.Root = root }).st, "partial"); len(left) != 0 {
					t.Errorf("round %d: partial downloads left behind: %v", round, left)
				}
				n := len(srv.Requests("/pinned")) + len(srv.Requests("/tofu")) - before
				if n > 2*hosts {
					t.Errorf("round %d: %d requests for 2 models on %d hosts", round, n, hosts)
				}
				t.Logf("round %d: %d downloads of 2 models by %d hosts", round, n, hosts)
			}
		})
	}
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Clean(p))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestPartialTakeover: a download that failed or whose writer died leaves
// its private part file; the next download of the model, from any host,
// takes it over (at once after a failure, once the lease expired after a
// kill) and resumes it, while a part file whose writer is alive is never
// touched.
func TestPartialTakeover(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, digest := testData(2<<20, 41)
	srv.Add("/m", data)
	root := t.TempDir()
	lease := cache.Lease{Refresh: 20 * time.Millisecond, Expiry: 200 * time.Millisecond}
	hostA := newTestStore(t, func(c *Config) { c.Root, c.Locks, c.Lease, c.MaxAttempts = root, cache.Locks{Off: true}, lease, 1 })
	hostB := newTestStore(t, func(c *Config) {
		c.Root, c.Locks, c.Lease, c.IdleTimeout = root, cache.Locks{Off: true}, lease, 500*time.Millisecond
	})

	// A's download breaks off: its part file is marked abandoned at once.
	srv.Faults("/m", modeltest.Fault{DropAfter: 700_000})
	if _, err := hostA.st.Fetch(testCtx(t), Request{Source: srv.Path("m"), SHA256: digest}); err == nil {
		t.Fatal("want the dropped connection to fail host A's fetch")
	}
	parts := storeFiles(t, hostA.st, "partial")
	if len(parts) != 2 { // .part and .json
		t.Fatalf("partial files after the failure: %v", parts)
	}
	// A writer that keeps its lease fresh but makes no progress: host B
	// waits for it IdleTimeout, then downloads itself, leaving its part
	// file alone.
	live := filepath.Join(hostA.st.Dir(), "partial", "d-"+digest+".0123456789abcdef.part")
	if err := os.WriteFile(live, data[:1<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopLease := fsutil.Heartbeat(ctx, live, lease.Refresh, nil)
	b, err := hostB.st.Fetch(testCtx(t), Request{Source: srv.Path("m"), SHA256: digest})
	stopLease()
	cancel()
	if err != nil || b.SHA256 != digest || fileDigest(t, b.Path) != digest {
		t.Fatalf("host B: %+v, %v", b, err)
	}
	reqs := srv.Requests("/m")
	if last := reqs[len(reqs)-1]; last.Range == "" || last.Range == "bytes=0-" {
		t.Errorf("host B did not resume host A's download: Range %q", last.Range)
	}
	if fi, err := os.Stat(live); err != nil || fi.Size() != 1<<20 {
		t.Error("a part file with a fresh lease was taken, changed or removed")
	}
	if got := storeFiles(t, hostB.st, "partial"); len(got) != 1 {
		t.Errorf("partial files after the takeover: %v, want only the live one", got)
	}
}

// TestPublishKeepsTheFirstBlob: a host that finishes a download second
// drops its copy; the blob that builds may already link to stays the same
// file.
func TestPublishKeepsTheFirstBlob(t *testing.T) {
	env := newTestStore(t, nil)
	env.st.ensureDirs()
	data, digest := testData(4096, 42)
	first := filepath.Join(env.st.Dir(), "partial", "first.part")
	second := filepath.Join(env.st.Dir(), "partial", "second.part")
	os.WriteFile(first, data, 0o644)
	os.WriteFile(second, data, 0o644)
	if err := env.st.publishBlob(first, digest, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(env.st.BlobPath(digest))
	if err := env.st.publishBlob(second, digest, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(env.st.BlobPath(digest))
	if !os.SameFile(before, after) || fileExists(second) || fileExists(first) {
		t.Errorf("second publish replaced the blob (%v) or left its part file", !os.SameFile(before, after))
	}
}

// TestLaterHostWaitsForADownload: a host that starts fetching a model while
// another host is downloading it (a part file with a fresh lease that
// grows) waits for that download instead of making its own.
func TestLaterHostWaitsForADownload(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, digest := testData(2<<20, 43)
	srv.Add("/m", data)
	srv.Throttle("/m", 2<<20) // about a second
	root := t.TempDir()
	off := cache.Locks{Off: true, Poll: 20 * time.Millisecond}
	hostA := newTestStore(t, func(c *Config) { c.Root, c.Locks = root, off })
	// The download grows by whole blocks of 1 MB, which under load can
	// take longer than the helpers' 2 s idle timeout.
	hostB := newTestStore(t, func(c *Config) { c.Root, c.Locks, c.IdleTimeout = root, off, 20*time.Second })
	var wg sync.WaitGroup
	var errA error
	wg.Go(func() { _, errA = hostA.st.Fetch(testCtx(t), Request{Source: srv.Path("m")}) })
	// Under -race on a busy machine host A may take seconds to start: host
	// B must come after A's download began, or both download by design.
	key := "s-" + hashKey(mustSource(t, srv.Path("m")).Canonical())[:40]
	deadline := time.Now().Add(60 * time.Second)
	for len(hostA.st.partialsOf(key)) == 0 {
		if time.Now().After(deadline) {
			wg.Wait()
			t.Fatalf("host A never started its download (%v)", errA)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b, err := hostB.st.Fetch(testCtx(t), Request{Source: srv.Path("m")})
	wg.Wait()
	if errA != nil || err != nil || b.SHA256 != digest || b.Downloaded {
		t.Fatalf("host A: %v; host B: %+v, %v\nhost B's log:\n%s", errA, b, err, hostB.logs.String())
	}
	if n := len(srv.Requests("/m")); n != 1 {
		t.Errorf("%d downloads, want 1: host B did not wait for host A's", n)
	}
	if !strings.Contains(hostB.logs.String(), "waiting for it") {
		t.Error("host B did not say it waited")
	}
}

func mustSource(t *testing.T, s string) Source {
	t.Helper()
	src, err := ParseSource(s)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestWaiterSeesTheBlobRecordedAfterThePartFileWent: the download a waiter
// waits for removes its part file a moment before it records the blob in
// the index; the waiter must not take that moment for a failed download
// and fetch the model again.
func TestWaiterSeesTheBlobRecordedAfterThePartFileWent(t *testing.T) {
	env := newTestStore(t, func(c *Config) { c.Locks.Poll = 10 * time.Millisecond })
	env.st.ensureDirs()
	const key = "s-0123456789abcdef"
	part := filepath.Join(env.st.partialDir(), key+".x1.part")
	if err := os.WriteFile(part, []byte("some bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	var recorded atomic.Bool
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.Remove(part) // published...
		time.Sleep(300 * time.Millisecond)
		recorded.Store(true) // ...and recorded
	}()
	waited := env.st.awaitOthers(testCtx(t), key, "m", recorded.Load)
	if !waited || !recorded.Load() {
		t.Errorf("awaitOthers returned %v before the blob was recorded", waited)
	}
}
