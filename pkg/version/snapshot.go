package version

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/snapshot"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// A realized build gets a snapshot: one file on the volume holding its code
// and venv (see pkg/snapshot), from which workers make local copies.

// SnapshotPath is where the snapshot of the build with key lives.
func (m *Manager) SnapshotPath(key string) string {
	return filepath.Join(m.layout().Snapshots(), key+".snap")
}

// BuildKey identifies the content of id's build at dir: the version and
// its marker, which records every input of every step (down to the digest
// of extra_model_paths.yaml). It changes whenever a realize changes the
// build, and not with the volume's mount point (/workspace on a Pod,
// /runpod-volume on serverless workers): a snapshot packed on one serves
// the other.
func BuildKey(id, dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, realize.MarkerFile))
	if err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	key, _, err := buildKey(id, data)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	return key, nil
}

// buildKey is BuildKey of a marker's bytes, with the marker decoded.
func buildKey(id string, marker []byte) (string, *realize.Marker, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(marker, &fields); err != nil {
		return "", nil, fmt.Errorf("marker: %w", err)
	}
	var mk realize.Marker
	if err := json.Unmarshal(marker, &mk); err != nil {
		return "", nil, fmt.Errorf("marker: %w", err)
	}
	delete(fields, "updated_at") // rewritten by a realize that changed nothing
	canon, _ := json.Marshal(fields)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", id)
	h.Write(canon)
	return id + "-" + hex.EncodeToString(h.Sum(nil))[:24], &mk, nil
}

// publishSnapshot packs id's build into its snapshot unless it has one;
// first it compiles the build's Python code, so that local copies start
// without compiling thousands of modules. It reports what it did, "" when
// the snapshot was there, and the build's key.
func (m *Manager) publishSnapshot(ctx context.Context, id, dir string) (key, detail string, err error) {
	if key, err = BuildKey(id, dir); err != nil {
		return "", "", err
	}
	path := m.SnapshotPath(key)
	if _, err := os.Stat(path); err == nil {
		return key, "", nil
	}
	m.compile(ctx, dir)
	st, won, err := snapshot.Publish(ctx, dir, path, m.packOptions(id, dir, key))
	if err != nil {
		return key, "", fmt.Errorf("snapshot of %s: %w", dir, err)
	}
	if after, err := BuildKey(id, dir); err != nil || after != key {
		// A realize on another host changed the build in place while it
		// was packed: what was packed may mix both.
		if won {
			snapshot.Discard(path, nil)
		}
		return "", "", fmt.Errorf("snapshot of %s: the build changed while it was packed; the next job packs it again", dir)
	}
	if !won {
		return key, "", nil
	}
	return key, fmt.Sprintf("%d files, %s packed into %s", st.Files, units.Bytes(st.Content), units.Bytes(st.Size)), nil
}

// compile writes the .pyc files of the build's own code (ComfyUI, custom
// nodes; pip compiled the venv). Failures are left to Python: a node that
// does not compile fails the same way at import.
func (m *Manager) compile(ctx context.Context, dir string) {
	python := filepath.Join(dir, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return
	}
	skip := "^" + regexp.QuoteMeta(filepath.Clean(dir)) + `/(\.venv|models)(/|$)`
	cmd := exec.CommandContext(ctx, python, "-m", "compileall", "-q", "-j", "0", "-x", skip, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		m.log.Debug().Err(err).Str("output", lastLines(string(out), 5)).Msg("compileall reported files that do not compile")
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// packOptions leave the build's models on the volume: the models/ folder
// (links to the shared models) and models placed inside the build.
func (m *Manager) packOptions(id, dir, key string) snapshot.PackOptions {
	var once sync.Once
	inside := map[string]bool{}
	return snapshot.PackOptions{
		Meta: snapshot.Meta{Key: key, Label: id},
		Skip: func(rel string, d fs.DirEntry) bool { return rel == ".core-staging" },
		Link: func(rel string, d fs.DirEntry) bool {
			once.Do(func() {
				mk, err := realize.ReadMarker(dir, id)
				if err != nil {
					return
				}
				for target := range mk.Models {
					if t, err := spec.ParseTarget(target); err == nil && t.Root == spec.ComfyRoot {
						inside[t.Rel] = true
					}
				}
			})
			return strings.HasPrefix(rel, "models/") || inside[rel]
		},
	}
}

// sameFileSystem reports whether a and b (or their nearest existing
// parents) are on one file system: a build already on local disk gains
// nothing from a copy.
func sameFileSystem(a, b string) bool {
	da, oka := device(a)
	db, okb := device(b)
	return oka && okb && da == db
}

func device(p string) (uint64, bool) {
	for {
		fi, err := os.Stat(p)
		if err == nil {
			return deviceOf(fi)
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) || parent == p {
			return 0, false
		}
		p = parent
	}
}

func deviceOf(fi os.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true
}
