package comfy

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/comfy/comfytest"
)

func TestConcurrentRunsShareOneSocket(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	const n = 4
	var wg sync.WaitGroup
	results := make([]*Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wf := mustWorkflow(t, fmt.Sprintf(`{
 "1": {"class_type": "EmptyImage", "inputs": {"width": %d, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "FakeSampler", "inputs": {"image": ["1", 0], "steps": 3, "step_ms": 5}},
 "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "run%d"}}
}`, 8+i, i))
			results[i], errs[i] = c.Run(t.Context(), wf, RunOptions{OutputDir: t.TempDir(), Timeout: 10 * time.Second})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if o := results[i].Outputs; len(o) != 1 || !strings.HasPrefix(o[0].Filename, fmt.Sprintf("run%d_", i)) {
			t.Errorf("run %d got outputs %+v", i, o)
		}
	}
	if clients := srv.ConnectedClients(); len(clients) != 1 {
		t.Errorf("connected sockets = %v, want the one shared socket", clients)
	}
}

func TestRunWithoutWebSocketPollsHistory(t *testing.T) {
	fake, err := comfytest.New(comfytest.Options{InputDir: t.TempDir(), OutputDir: t.TempDir(), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// A proxy in front of ComfyUI that does not pass WebSockets.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/ws") {
			http.Error(w, "no websockets here", http.StatusBadGateway)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { hs.Close(); fake.Close() })
	c := newTestClient(t, hs.URL, nil)
	res, err := c.Run(t.Context(), mustWorkflow(t, slowWorkflow(2, 20)), RunOptions{OutputDir: t.TempDir(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].Size == 0 {
		t.Errorf("outputs = %+v", res.Outputs)
	}
}

func TestUploadInputStreamsLargeFiles(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	data := make([]byte, 12<<20)
	rand.Read(data)
	// A reader that hands out small pieces, like a network body would.
	name, err := c.UploadInput(t.Context(), "clip.mp4", io.MultiReader(bytes.NewReader(data[:1<<20]), bytes.NewReader(data[1<<20:])))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(srv.Options().InputDir, name))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes (%v), want %d", len(got), err, len(data))
	}

	failing := io.MultiReader(bytes.NewReader(data[:1000]), iotestErrReader{})
	if _, err := c.UploadInput(t.Context(), "broken.png", failing); err == nil || !strings.Contains(err.Error(), "read input broken.png") {
		t.Errorf("a failing reader gave err = %v", err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, fmt.Errorf("disk on fire") }
