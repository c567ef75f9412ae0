package realize

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/cache"
)

// BuildGCOptions tune CollectBuilds.
type BuildGCOptions struct {
	// MinAge spares builds used (or written) more recently: a worker
	// refreshes the lease of the build it runs at every job (Touch).
	MinAge time.Duration
	// Lease is how realizes refresh their stages: a stage stays until its
	// lease could have expired, whatever MinAge says. Zero fields take
	// cache.DefaultLease.
	Lease  cache.Lease
	DryRun bool
	Now    time.Time // zero: time.Now()
}

// BuildGCReport says what CollectBuilds removed (or would remove).
type BuildGCReport struct {
	Removed []GCBuild `json:"removed"`
	// Current counts the builds versions point to; InUse those younger
	// than MinAge.
	Current int `json:"current"`
	InUse   int `json:"in_use"`
	// Freed counts the bytes of files no other build shares.
	Freed int64 `json:"freed_bytes"`
}

// GCBuild is one build (or stage, or build moved aside) removed.
type GCBuild struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// CollectBuilds removes, under buildsRoot, the builds no version points to
// whose lease is older than MinAge: earlier builds, stages of realizes
// that died, builds moved aside, and leftover temp names. It decides by
// those ages alone, not by locks, so it is safe while workers on other
// hosts realize and run: a build in use has a fresh lease, and a realize's
// stage too.
func CollectBuilds(ctx context.Context, buildsRoot string, o BuildGCOptions) (BuildGCReport, error) {
	var rep BuildGCReport
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	entries, err := os.ReadDir(buildsRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("builds gc: %w", err)
	}
	old := func(p string) bool { return fsutil.Abandoned(p, max(o.MinAge, o.Lease.OrDefault().Expiry), o.Now) }
	var drop []string
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		name := e.Name()
		p := filepath.Join(buildsRoot, name)
		switch {
		case fsutil.IsTempName(name):
			if old(p) {
				drop = append(drop, p)
			}
		case e.IsDir() && strings.HasSuffix(name, storeSuffix):
			cur, _, _ := Current(strings.TrimSuffix(p, storeSuffix))
			builds, err := os.ReadDir(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue // the version was deleted meanwhile
			}
			if err != nil {
				return rep, fmt.Errorf("builds gc: %w", err)
			}
			for _, b := range builds {
				bp := filepath.Join(p, b.Name())
				switch {
				case bp == cur:
					rep.Current++
				case old(bp):
					drop = append(drop, bp)
				case b.IsDir() && !strings.HasPrefix(b.Name(), "."):
					rep.InUse++
				}
			}
		}
	}
	sort.Strings(drop)
	for _, p := range drop {
		item := GCBuild{Path: p, Size: freedBy(p)}
		if !o.DryRun {
			// A private name first, so no realize finds half a build
			// under its key.
			aside := fsutil.TempPath(p)
			if err := os.Rename(p, aside); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed meanwhile, or taken over
				}
				return rep, fmt.Errorf("builds gc: %w", err)
			}
			if err := os.RemoveAll(aside); err != nil {
				return rep, fmt.Errorf("builds gc: %w", err)
			}
		}
		rep.Removed = append(rep.Removed, item)
		rep.Freed += item.Size
	}
	return rep, nil
}

// freedBy counts the bytes of the files under p that no other path links:
// what removing p frees (builds share unchanged files by hard links).
func freedBy(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Nlink <= 1 {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// BuildDirs lists every build under buildsRoot whose marker names models:
// each version's current and earlier builds, stages, builds moved aside,
// and builds made in place by earlier releases. A gc keeps the models any
// of them uses.
func BuildDirs(buildsRoot string) []string {
	var out []string
	entries, _ := os.ReadDir(buildsRoot)
	for _, e := range entries {
		p := filepath.Join(buildsRoot, e.Name())
		switch {
		case e.IsDir() && strings.HasSuffix(e.Name(), storeSuffix):
			builds, _ := os.ReadDir(p)
			for _, b := range builds {
				if b.IsDir() && exists(filepath.Join(p, b.Name(), MarkerFile)) {
					out = append(out, filepath.Join(p, b.Name()))
				}
			}
		case e.IsDir() && exists(filepath.Join(p, MarkerFile)):
			out = append(out, p)
		}
	}
	return out
}
