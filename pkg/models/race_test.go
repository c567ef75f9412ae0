package models

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

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
				if n := len(srv.Requests("/pinned")) + len(srv.Requests("/tofu")) - before; n > 2*hosts {
					t.Errorf("round %d: %d requests for 2 models on %d hosts", round, n, hosts)
				}
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
