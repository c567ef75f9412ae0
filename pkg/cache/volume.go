package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// UsesVolume reports whether the worker needs the network volume: the
// cache or the builds root defaults to it (not set) or is set to a path on
// it, or one of paths (other settings that name files: MODELS_DIR, a key
// file, a versions directory; empty ones are skipped) is on it. With both
// roots set elsewhere and nothing else on it, the volume is not needed; an
// unset MODELS_DIR then follows the volume if there is one.
func (e Env) UsesVolume(paths ...string) bool {
	vol := filepath.Clean(e.volume())
	on := func(p string) bool {
		p = filepath.Clean(p)
		return p == vol || strings.HasPrefix(p, vol+string(filepath.Separator))
	}
	if e.CacheDir == "" || e.BuildsDir == "" || on(e.CacheDir) || on(e.BuildsDir) {
		return true
	}
	for _, p := range paths {
		if p != "" && on(p) {
			return true
		}
	}
	return false
}

// VolumeState is what the start-up wait found.
type VolumeState int

const (
	// VolumeNotNeeded: nothing lives on the volume; the worker did not
	// wait for it.
	VolumeNotNeeded VolumeState = iota
	// VolumeMounted: the volume is there.
	VolumeMounted
	// VolumeMissing: the worker needs the volume and it did not come; it
	// runs on the container disk.
	VolumeMissing
)

// VolumeWait is a serverless worker's start-up wait for its network
// volume.
type VolumeWait struct {
	Env Env
	// Paths are the other settings that name files (MODELS_DIR, a key
	// file, versions directories): the volume is needed when one is on it.
	Paths []string
	// Timeout bounds the wait (RUNPOD_VOLUME_WAIT); 0 looks once.
	Timeout time.Duration
	// Poll is how often the volume is looked for; default 1s.
	Poll time.Duration
	// Waiting is called once when the volume is not there yet and the
	// worker waits for it.
	Waiting func(path string, timeout time.Duration)
}

// Wait waits for the volume when the worker needs it. A volume that does
// not come is no error: the worker then runs on the container disk, and
// warning says so, for the log and the first job's result. Only ctx
// ending is an error.
func (w VolumeWait) Wait(ctx context.Context) (state VolumeState, warning string, err error) {
	if !w.Env.UsesVolume(w.Paths...) {
		return VolumeNotNeeded, "", nil
	}
	vol := w.Env.volume()
	if VolumeReady(vol) {
		return VolumeMounted, "", nil
	}
	if w.Timeout > 0 {
		if w.Waiting != nil {
			w.Waiting(vol, w.Timeout)
		}
		poll := w.Poll
		if poll <= 0 {
			poll = time.Second
		}
		err := WaitForVolume(ctx, vol, w.Timeout, poll)
		if err == nil {
			return VolumeMounted, "", nil
		}
		if ctx.Err() != nil {
			return VolumeMissing, "", ctx.Err()
		}
	}
	return VolumeMissing, fmt.Sprintf("no network volume at %s (waited %s): this worker keeps its builds, models and caches on the container disk, "+
		"where they are lost when it stops, so every worker realizes each version again; attach a network volume to the endpoint "+
		"(mounted at %s), or set COMFY_CACHE_ROOT and COMFY_BUILDS_ROOT to say where they go", vol, w.Timeout, vol), nil
}
