package cache

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRoots(t *testing.T) {
	vol := t.TempDir()
	missing := filepath.Join(t.TempDir(), "absent")
	ro := t.TempDir()
	os.Chmod(ro, 0o555)
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	for _, tc := range []struct {
		name          string
		env           Env
		cache, builds string
	}{
		{"explicit", Env{CacheDir: "/c", BuildsDir: "/b", Volume: vol}, "/c", "/b"},
		{"volume", Env{Volume: vol, Home: "/h"}, vol + "/cache/runpod-comfy", vol + "/builds"},
		{"no volume, xdg", Env{Volume: missing, XDGCacheHome: "/x", Home: "/h"}, "/x/runpod-comfy", "/h/comfy-builds"},
		{"no volume, home", Env{Volume: missing, Home: "/h"}, "/h/.cache/runpod-comfy", "/h/comfy-builds"},
	} {
		if got := tc.env.CacheRoot(); got != tc.cache {
			t.Errorf("%s: CacheRoot = %s, want %s", tc.name, got, tc.cache)
		}
		if got := tc.env.BuildsRoot(); got != tc.builds {
			t.Errorf("%s: BuildsRoot = %s, want %s", tc.name, got, tc.builds)
		}
	}
	if os.Geteuid() != 0 { // root can write anywhere
		if got := (Env{Volume: ro, Home: "/h"}).CacheRoot(); got != "/h/.cache/runpod-comfy" {
			t.Errorf("read-only volume: CacheRoot = %s", got)
		}
	}
}
