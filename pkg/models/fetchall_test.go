package models

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/models/modeltest"
)

func TestFetchAll(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	var reqs []Request
	digests := map[string]string{}
	for i := range 4 {
		data, digest := testData(512<<10, uint64(30+i))
		p := fmt.Sprintf("/m%d", i)
		srv.Add(p, data)
		srv.Throttle(p, 4<<20)
		digests[p] = digest
		reqs = append(reqs, Request{Item: fmt.Sprintf("loras/m%d.safetensors", i), Source: srv.Path(p)})
	}
	reqs = append(reqs,
		Request{Item: "vae/missing.safetensors", Source: srv.Path("nope")},
		Request{Item: "unet/wrong.safetensors", Source: srv.Path("m0"), SHA256: strings.Repeat("ab", 32)},
	)
	env := newTestStore(t, nil)

	blobs, err := env.st.FetchAll(testCtx(t), reqs, 2)
	if err == nil {
		t.Fatal("want an error for the two bad models")
	}
	for i := range 4 {
		if blobs[i].SHA256 != digests[fmt.Sprintf("/m%d", i)] {
			t.Errorf("blob %d = %+v", i, blobs[i])
		}
	}
	if blobs[4] != (Blob{}) || blobs[5] != (Blob{}) {
		t.Errorf("failed requests have blobs: %+v %+v", blobs[4], blobs[5])
	}
	msg := err.Error()
	for _, want := range []string{"vae/missing.safetensors", "unet/wrong.safetensors"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if strings.Contains(msg, "loras/m1") {
		t.Errorf("error names a model that succeeded: %v", err)
	}
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Errorf("ChecksumError not reachable through the joined error")
	}
	if got := srv.MaxActive(); got != 2 {
		t.Errorf("at most %d downloads ran at once, want 2", got)
	}
}

func TestFetchAllCancel(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	var reqs []Request
	for i := range 4 {
		data, _ := testData(4<<20, uint64(40+i))
		p := fmt.Sprintf("/slow%d", i)
		srv.Add(p, data)
		srv.Throttle(p, 1<<20)
		reqs = append(reqs, Request{Source: srv.Path(p)})
	}
	env := newTestStore(t, nil)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := env.st.FetchAll(ctx, reqs, 2)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	// Partial downloads stay for a later resume; nothing reaches the blobs.
	if got := storeFiles(t, env.st, "sha256"); len(got) != 0 {
		t.Errorf("blobs after cancel: %v", got)
	}
	srv.CloseClientConnections()
	env.st.client.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines before, %d after", before, n)
	}
}

// TestFetchAllChecksSpaceFirst: models of known size that cannot fit fail
// the whole fetch before any download, saying how much is needed; sizes
// already in the store, or unknown, do not count.
func TestFetchAllChecksSpaceFirst(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, _ := testData(1000, 77)
	srv.Add("/big", data)
	srv.Add("/small", data[:10])
	env := newTestStore(t, nil)
	old := freeSpace
	t.Cleanup(func() { freeSpace = old })
	freeSpace = func(string) (int64, error) { return 500, nil }

	_, err := env.st.FetchAll(testCtx(t), []Request{{Item: "big", Source: srv.Path("big"), Size: 1000}, {Item: "small", Source: srv.Path("small"), Size: 10}}, 2)
	if err == nil || !strings.Contains(err.Error(), "need 1010 B, and 500 B is free") {
		t.Fatalf("err = %v", err)
	}
	if n := len(srv.Requests("/big")) + len(srv.Requests("/small")); n != 0 {
		t.Errorf("%d downloads started", n)
	}
	// Unknown sizes are not counted; a model in the store needs no space.
	if _, err := env.st.FetchAll(testCtx(t), []Request{{Item: "big", Source: srv.Path("big")}}, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := env.st.FetchAll(testCtx(t), []Request{{Item: "big", Source: srv.Path("big"), Size: 1000}}, 2); err != nil {
		t.Errorf("a cached model was counted: %v", err)
	}
}
