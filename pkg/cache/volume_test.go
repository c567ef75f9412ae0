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

func TestVolumeWait(t *testing.T) {
	dir := t.TempDir()
	absent := filepath.Join(dir, "runpod-volume")
	mounted := filepath.Join(dir, "mounted")
	os.MkdirAll(filepath.Join(mounted, "builds"), 0o755) // not empty: ready
	elsewhere := filepath.Join(dir, "local")
	for _, tc := range []struct {
		name      string
		env       Env
		modelsDir string
		timeout   time.Duration
		want      VolumeState
		minWait   time.Duration
		warns     bool
	}{
		{"both roots elsewhere: no wait", Env{Volume: absent, CacheDir: elsewhere + "/cache", BuildsDir: elsewhere + "/builds"}, "", time.Minute, VolumeNotNeeded, 0, false},
		{"cache root on the volume", Env{Volume: absent, CacheDir: absent + "/cache", BuildsDir: elsewhere}, "", 150 * time.Millisecond, VolumeMissing, 150 * time.Millisecond, true},
		{"MODELS_DIR on the volume", Env{Volume: absent, CacheDir: elsewhere, BuildsDir: elsewhere}, absent + "/models", 150 * time.Millisecond, VolumeMissing, 150 * time.Millisecond, true},
		{"defaults, no volume", Env{Volume: absent}, "", 150 * time.Millisecond, VolumeMissing, 150 * time.Millisecond, true},
		{"defaults, no wait asked", Env{Volume: absent}, "", 0, VolumeMissing, 0, true},
		{"defaults, volume there", Env{Volume: mounted}, "", time.Minute, VolumeMounted, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waited := false
			start := time.Now()
			state, warning, err := VolumeWait{Env: tc.env, Paths: []string{"", "versions", tc.modelsDir}, Timeout: tc.timeout, Poll: 10 * time.Millisecond,
				Waiting: func(string, time.Duration) { waited = true }}.Wait(context.Background())
			el := time.Since(start)
			if err != nil || state != tc.want || (warning != "") != tc.warns {
				t.Fatalf("state %v, warning %q, err %v", state, warning, err)
			}
			if el < tc.minWait || (tc.minWait == 0 && el > time.Second) || waited != (tc.minWait > 0) {
				t.Errorf("waited %v (callback %v), want at least %v", el, waited, tc.minWait)
			}
			if tc.warns && !strings.Contains(warning, "container disk") {
				t.Errorf("warning %q does not say where the worker runs", warning)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := (VolumeWait{Env: Env{Volume: absent}, Timeout: time.Minute}).Wait(ctx); err == nil {
		t.Error("a cancelled wait is no error")
	}
}
