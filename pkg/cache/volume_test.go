package cache

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWaitForVolume(t *testing.T) {
	vol := filepath.Join(t.TempDir(), "runpod-volume")
	if VolumeReady(vol) {
		t.Fatal("absent volume reported ready")
	}
	os.Mkdir(vol, 0o755)
	if VolumeReady(vol) {
		t.Fatal("an empty directory on the same device is not a mounted volume")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.WriteFile(filepath.Join(vol, "marker"), nil, 0o644) // the volume "arrives"
	}()
	start := time.Now()
	if err := WaitForVolume(context.Background(), vol, 5*time.Second, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 90*time.Millisecond || el > 2*time.Second {
		t.Errorf("waited %v", el)
	}
	err := WaitForVolume(context.Background(), filepath.Join(vol, "none"), 50*time.Millisecond, 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "attach the volume") {
		t.Fatalf("timeout error: %v", err)
	}
	// /proc is a mount point on Linux: ready by device, even if empty were it.
	if !VolumeReady("/proc") {
		t.Error("/proc not seen as a mount point")
	}
}
