// Package version turns a version id into a runnable build. It owns the
// whole pipeline a job or a CLI command runs before ComfyUI starts:
//
//	Find(id)        the spec file, searched in the spec directories in order
//	Load(id)        the spec decoded, its model sources checked, warnings logged
//	Lock(ctx, s)    the lock: reused when the spec is unchanged, else resolved
//	                (refs -> commits) and written to <cache>/resolved/<id>.lock.json
//	Realize(ctx, …) the build on disk from the shared cache, under the cache's
//	                gc lock, with progress reported as it goes
//	Prepare(ctx, …) all of the above for a job, answered from memory while the
//	                spec, the lock and the build's marker are unchanged on disk
//
// List, Delete and GC work on the same spec directories, locks and builds.
// A Manager is made once from a Config (which the CLI fills from flags and
// the environment) and is safe for concurrent use.
package version

import (
	"path/filepath"

	"github.com/rs/zerolog"
	"google.golang.org/api/option"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// Config is everything the pipeline needs, read once from flags and the
// environment by the caller.
type Config struct {
	// VersionsDir is searched first (the image's ./versions), then
	// ExtraSpecDirs, then <Volume>/versions.
	VersionsDir   string
	ExtraSpecDirs []string
	// Volume is the network volume's mount point (cache.DefaultVolume when
	// empty).
	Volume string

	CacheRoot  string
	BuildsRoot string
	// Target is one build directory used for every id (--target, or
	// COMFY_HOME); empty means <BuildsRoot>/comfy-<id>.
	Target string
	// ModelsDir is the shared models directory.
	ModelsDir string
	// WheelsDir installs Python packages only from these wheels.
	WheelsDir string
	// Offline never touches the network: the lock and caches only.
	Offline bool
	// Update re-resolves every ref before realizing.
	Update bool
	// Jobs bounds parallel git fetches and model downloads (default 4).
	Jobs int

	HFToken      string
	CivitaiToken string
	// HFEndpoint and CivitaiEndpoint serve hf:// and civitai:// sources
	// from a mirror; empty means the public services.
	HFEndpoint      string
	CivitaiEndpoint string
	GitRewrites     []gitsrc.Rewrite
	// BufferedModelWrites keeps model downloads in the page cache even on a
	// local disk.
	BufferedModelWrites bool
	// ModelGCS configures the client for gs:// model sources; called only
	// when a realize runs, so a broken key does not stop validate. Nil:
	// the client's default credentials.
	ModelGCS func() ([]option.ClientOption, error)

	Logger zerolog.Logger
	// Local configures local copies of builds on a network volume.
	Local LocalConfig

	// Display opens where a realize shows its progress (a terminal bar,
	// or log lines); close is called when the realize ends. Nil: nowhere
	// but the per-call progress.
	Display func() (report progress.Func, close func())
}

// Manager runs the pipeline for one configuration.
type Manager struct {
	cfg      Config
	log      zerolog.Logger
	prepared preparedCache
	local    local
}

// Open makes a Manager. It touches no file: every path is used on demand.
func Open(cfg Config) *Manager {
	if cfg.Jobs < 1 {
		cfg.Jobs = 4
	}
	return &Manager{cfg: cfg, log: cfg.Logger}
}

// Config returns the configuration the manager was opened with.
func (m *Manager) Config() Config { return m.cfg }

// SpecDirs are the directories searched for versions/<id>.json, in order:
// the first one holding an id wins.
func (m *Manager) SpecDirs() []string {
	dirs := []string{m.cfg.VersionsDir}
	for _, d := range m.cfg.ExtraSpecDirs {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	vol := m.cfg.Volume
	if vol == "" {
		vol = cache.DefaultVolume
	}
	return append(dirs, filepath.Join(vol, "versions"))
}

// LockPath is where id's lock lives in the shared cache.
func (m *Manager) LockPath(id string) string { return lock.Path(m.cfg.CacheRoot, id) }

// BuildDir is where id's build lives: the configured target, else
// <builds root>/comfy-<id>.
func (m *Manager) BuildDir(id string) string {
	if m.cfg.Target != "" {
		return m.cfg.Target
	}
	return m.defaultBuildDir(id)
}

func (m *Manager) defaultBuildDir(id string) string { return cache.BuildDir(m.cfg.BuildsRoot, id) }

// ModelsDir is the shared models directory.
func (m *Manager) ModelsDir() string { return m.cfg.ModelsDir }

func (m *Manager) layout() cache.Layout { return cache.Layout{Root: m.cfg.CacheRoot} }
