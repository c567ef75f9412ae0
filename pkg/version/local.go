package version

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/runpod-comfy/worker/internal/envconf"
	"github.com/runpod-comfy/worker/pkg/snapshot"
)

// LocalConfig configures local copies of builds: a worker whose builds are
// on a network volume runs ComfyUI from a copy on local disk, unpacked
// from the build's snapshot, with models still read from the volume.
type LocalConfig struct {
	// Dir holds the copies (COMFY_LOCAL_DIR); "" turns them off.
	Dir string
	// Keep is how many copies stay on disk (COMFY_LOCAL_COPIES, default 2).
	Keep int
	// MaxBytes bounds their size (COMFY_LOCAL_MAX_SIZE); 0: free space only.
	MaxBytes int64
}

// LocalFromEnv reads the local copies' settings: COMFY_LOCAL_DIR (off or
// none turns copies off; default <tmp>/runpod-comfy/builds, the container
// disk), COMFY_LOCAL_COPIES and COMFY_LOCAL_MAX_SIZE (bytes).
func LocalFromEnv(getenv func(string) string, tmp string) (LocalConfig, error) {
	env := &envconf.Reader{Getenv: getenv}
	c := LocalConfig{Dir: env.Str("COMFY_LOCAL_DIR"), Keep: env.Count("COMFY_LOCAL_COPIES"), MaxBytes: env.Bytes("COMFY_LOCAL_MAX_SIZE")}
	switch {
	case envconf.Falsy(c.Dir) || strings.EqualFold(c.Dir, "none"):
		c.Dir = ""
	case c.Dir == "":
		c.Dir = filepath.Join(tmp, "runpod-comfy", "builds")
	}
	return c, env.Err()
}

// local is the manager's store of local copies, opened on first use.
type local struct {
	once  sync.Once
	store *snapshot.Store
	err   error
}

func (m *Manager) localStore() (*snapshot.Store, error) {
	m.local.once.Do(func() {
		m.local.store, m.local.err = snapshot.NewStore(snapshot.StoreOptions{
			Dir: m.cfg.Local.Dir, Keep: m.cfg.Local.Keep, MaxBytes: m.cfg.Local.MaxBytes, Logger: m.log,
		})
	})
	return m.local.store, m.local.err
}

// wantsLocal reports whether builds at dir are run from local copies:
// copies are on, and dir is not on their file system already.
func (m *Manager) wantsLocal(dir string) bool {
	return m.cfg.Local.Dir != "" && !sameFileSystem(dir, m.cfg.Local.Dir)
}

// Local returns the build to run: b's local copy, unpacked now when this
// host has none, or b itself when local copies are off or the build is on
// local disk. A copy that cannot be made (a full disk) is logged and the
// build runs from the volume: a cache never fails a job. release must be
// called once ComfyUI no longer runs the returned build, so that the copy
// may be evicted; err is set only when ctx ended.
func (b *Build) Local(ctx context.Context) (run *Build, release func(), err error) {
	if b.manager == nil {
		return b, func() {}, nil
	}
	return b.manager.localCopy(ctx, b)
}

func (m *Manager) localCopy(ctx context.Context, b *Build) (*Build, func(), error) {
	log := m.log.With().Str("version_id", b.VersionID).Logger()
	var c *snapshot.Copy
	var err error
	if e := b.early.take(); e != nil {
		select {
		case <-e.done:
			c, err = e.copy, e.err
		case <-ctx.Done():
			e.cancel()
			<-e.done
			if e.copy != nil {
				e.copy.Release()
			}
			return nil, nil, ctx.Err()
		}
	} else {
		store, serr := m.localStore()
		if serr != nil {
			log.Warn().Err(serr).Msg("local copies are unavailable; running the build from the volume")
			return b, func() {}, nil
		}
		c, err = store.Acquire(ctx, m.source(b))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		log.Warn().Err(err).Msg("no local copy of the build; running it from the volume")
		return b, func() {}, nil
	}
	if c.Made {
		log.Info().Str("dir", c.Dir).Int64("took_ms", c.Took.Milliseconds()).Int("files", c.Stats.Files).Msg("build copied to local disk")
	}
	run := *b
	run.Dir, run.Python, run.manager, run.early = c.Dir, filepath.Join(c.Dir, ".venv", "bin", "python"), nil, nil
	run.LocalCopy = true
	return &run, c.Release, nil
}

// source is what the store needs to copy b.
func (m *Manager) source(b *Build) snapshot.Source {
	return snapshot.Source{
		Key: b.Key, Label: b.VersionID, Build: b.Source, Snapshot: m.SnapshotPath(b.Key),
		Pack: m.packOptions(b.VersionID, b.Source, b.Key), Fix: absoluteModelPaths(b.Source),
	}
}

// absoluteModelPaths makes extra_model_paths.yaml's relative base_path
// values absolute against the build on the volume: realize writes them
// relative to the build (the volume may be mounted anywhere), and ComfyUI
// resolves them against the file's directory, which is now the copy.
func absoluteModelPaths(source string) func(dir string) error {
	return func(dir string) error {
		p := filepath.Join(dir, "extra_model_paths.yaml")
		data, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("extra_model_paths.yaml: %w", err)
		}
		changed := false
		if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
			top := doc.Content[0].Content
			for i := 1; i < len(top); i += 2 {
				sec := top[i]
				if sec.Kind != yaml.MappingNode {
					continue
				}
				for j := 0; j+1 < len(sec.Content); j += 2 {
					k, v := sec.Content[j], sec.Content[j+1]
					if k.Value == "base_path" && v.Kind == yaml.ScalarNode && v.Value != "" && !filepath.IsAbs(v.Value) && !strings.ContainsAny(v.Value[:1], "~$") {
						v.Value = filepath.Join(source, v.Value)
						changed = true
					}
				}
			}
		}
		if !changed {
			return nil
		}
		out, err := yaml.Marshal(&doc)
		if err != nil {
			return err
		}
		return os.WriteFile(p, out, 0o644)
	}
}
