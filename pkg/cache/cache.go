// Package cache knows where things live: the shared cache root (git object
// stores, model blobs, pip cache, lock files) and the builds root, with the
// defaults that make a RunPod network volume the natural home of both.
// The rules for shared state live here too: file locks (an optimisation
// within one host, Locks) and leases (what holds across hosts, Lease).
package cache

import (
	"os"
	"path/filepath"
	"syscall"
)

// DefaultVolume is where RunPod serverless mounts a network volume.
const DefaultVolume = "/runpod-volume"

// Env is the part of the environment that decides the roots. The CLI fills
// it once from the process environment.
type Env struct {
	CacheDir     string // COMFY_CACHE_ROOT (or the original's aliases)
	BuildsDir    string // COMFY_BUILDS_ROOT
	XDGCacheHome string // XDG_CACHE_HOME
	Home         string // HOME
	// Volume is the network volume mount point; DefaultVolume when empty.
	Volume string
}

func (e Env) volume() string {
	if e.Volume != "" {
		return e.Volume
	}
	return DefaultVolume
}

// CacheRoot picks the cache root: the explicit setting, the volume when it
// is writable, then the XDG cache directory, then ~/.cache.
func (e Env) CacheRoot() string {
	switch {
	case e.CacheDir != "":
		return e.CacheDir
	case writable(e.volume()):
		return filepath.Join(e.volume(), "cache", "runpod-comfy")
	case e.XDGCacheHome != "":
		return filepath.Join(e.XDGCacheHome, "runpod-comfy")
	default:
		return filepath.Join(e.Home, ".cache", "runpod-comfy")
	}
}

// BuildsRoot picks the directory holding comfy-<id> builds.
func (e Env) BuildsRoot() string {
	switch {
	case e.BuildsDir != "":
		return e.BuildsDir
	case isDir(e.volume()):
		return filepath.Join(e.volume(), "builds")
	default:
		return filepath.Join(e.Home, "comfy-builds")
	}
}

// BuildDir is the default build directory of a version.
func BuildDir(buildsRoot, id string) string {
	return filepath.Join(buildsRoot, "comfy-"+id)
}

// Layout names the directories under a cache root.
type Layout struct {
	Root string
	// Lockers takes the cache-wide lock (LockCache).
	Lockers Locks
}

// Resolved holds lock files.
func (l Layout) Resolved() string { return filepath.Join(l.Root, "resolved") }

// Git holds one bare repository per remote, keyed host/owner/repo.
func (l Layout) Git() string { return filepath.Join(l.Root, "git") }

// Models holds content-addressed model blobs and the source index.
func (l Layout) Models() string { return filepath.Join(l.Root, "models") }

// Pip is the shared pip/uv download cache.
func (l Layout) Pip() string { return filepath.Join(l.Root, "pip") }

// Locks holds the lock files that serialise work across processes.
func (l Layout) Locks() string { return filepath.Join(l.Root, "locks") }

// Snapshots holds one packed snapshot per build (pkg/snapshot).
func (l Layout) Snapshots() string { return filepath.Join(l.Root, "snapshots") }

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func writable(p string) bool {
	return isDir(p) && syscall.Access(p, 2 /* W_OK */) == nil
}

// ModelsDir is the shared models directory when MODELS_DIR is not set:
// on the volume when there is one, else ~/comfy-models.
func (e Env) ModelsDir() string {
	if isDir(e.volume()) {
		return filepath.Join(e.volume(), "models")
	}
	return filepath.Join(e.Home, "comfy-models")
}
