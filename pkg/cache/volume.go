package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// VolumeReady reports whether a network volume is mounted at path: it is a
// directory on another device than its parent (a mount point), or it
// already holds entries (a volume mounted through a bind that keeps the
// device, as some runtimes do).
func VolumeReady(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	parent, err := os.Stat(filepath.Dir(filepath.Clean(path)))
	if err == nil {
		a, okA := st.Sys().(*syscall.Stat_t)
		b, okB := parent.Sys().(*syscall.Stat_t)
		if okA && okB && a.Dev != b.Dev {
			return true
		}
	}
	entries, err := os.ReadDir(path)
	return err == nil && len(entries) > 0
}

// WaitForVolume waits until a volume is mounted at path, polling, for at
// most timeout. RunPod can start the container before the network volume
// is attached; starting without it would build onto the container disk.
func WaitForVolume(ctx context.Context, path string, timeout, poll time.Duration) error {
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if VolumeReady(path) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no network volume at %s after %s: attach the volume to the endpoint (mounted at %s), or set RUNPOD_VOLUME_WAIT=0 to run without one", path, timeout, path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
