package job

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/netvol"
	"github.com/runpod-comfy/worker/pkg/comfy"
)

// TestReadAheadReadsTheWorkflowsModels: of the version's models, the ones
// the workflow names are read from the volume in full while the job
// starts, and no other.
func TestReadAheadReadsTheWorkflowsModels(t *testing.T) {
	backing := t.TempDir()
	sizes := map[string]int{"checkpoints/sd/used.safetensors": 3 << 20, "loras/unused.safetensors": 1 << 20, "vae/also-used.pt": 5000}
	for rel, n := range sizes {
		p := filepath.Join(backing, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Repeat("w", n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vol := netvol.MountT(t, backing, "", netvol.Options{MetaDelay: time.Millisecond})
	b := &Build{VersionID: "v"}
	for rel := range sizes {
		b.Models = append(b.Models, filepath.Join(vol.Dir(), rel))
	}
	wf, err := comfy.ParseWorkflow([]byte(`{
	  "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd/used.safetensors"}},
	  "2": {"class_type": "VAELoader", "inputs": {"vae_name": "also-used.pt"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	j := &jobRun{log: zerolog.Nop()}
	vol.ResetStats()
	stop := j.readAhead(context.Background(), b, wf)
	deadline := time.Now().Add(10 * time.Second)
	want := int64(sizes["checkpoints/sd/used.safetensors"] + sizes["vae/also-used.pt"])
	for vol.Stats().BytesRead < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if st := vol.Stats(); st.BytesRead != want || st.Opens != 2 {
		t.Errorf("read ahead %d bytes in %d files; want %d bytes, the 2 files the workflow names", st.BytesRead, st.Opens, want)
	}
}

// TestReadAheadStops: a job that ends stops reading at once.
func TestReadAheadStops(t *testing.T) {
	backing := t.TempDir()
	os.WriteFile(filepath.Join(backing, "big.safetensors"), make([]byte, 64<<20), 0o644)
	vol := netvol.MountT(t, backing, "", netvol.Options{ReadBandwidth: 8 << 20})
	b := &Build{Models: []string{filepath.Join(vol.Dir(), "big.safetensors")}}
	wf, _ := comfy.ParseWorkflow([]byte(`{"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "big.safetensors"}}}`))
	j := &jobRun{log: zerolog.Nop()}
	stop := j.readAhead(context.Background(), b, wf)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	stop()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stop took %v", took)
	}
	if n := vol.Stats().BytesRead; n >= 64<<20 {
		t.Errorf("read %d bytes: the whole file, not stopped", n)
	}
}
