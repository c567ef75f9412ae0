package realize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/lock"
)

// MarkerFile records, inside a build, what each step produced and from
// which inputs, so a re-run redoes only what changed or failed and a
// complete build is recognised from stat data alone.
const MarkerFile = ".worker-build.json"

// Marker is the build's state.
type Marker struct {
	VersionID string `json:"version_id"`
	// LockDigest identifies the lock the build was completed from.
	LockDigest string `json:"lock_digest"`
	Complete   bool   `json:"complete"`
	// Core is the ComfyUI commit exported, and the top-level entries it
	// put in the build (removed when the core changes).
	Core        string   `json:"core"`
	CoreEntries []string `json:"core_entries,omitempty"`
	// Nodes maps node dir -> commit exported there.
	Nodes map[string]string `json:"nodes"`
	// Python is the digest of the install plan last installed, with the
	// resulting `pip freeze`.
	Python       string   `json:"python"`
	PythonFreeze []string `json:"python_freeze,omitempty"`
	// PythonInputs digests what in the lock decides the Python install
	// (core and participating node commits, packages, interpreter
	// options), so a dry run can tell whether pip will run without reading
	// trees it has not exported yet.
	PythonInputs string `json:"python_inputs,omitempty"`
	Interpreter  string `json:"interpreter,omitempty"`
	// Models maps a target as written in the lock to what was placed.
	Models map[string]PlacedModel `json:"models"`
	// ExtraModelPaths is the digest of the extra_model_paths.yaml written.
	ExtraModelPaths string    `json:"extra_model_paths"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// PlacedModel is a model file in place, with the stat data that lets a
// later run trust it without hashing gigabytes again.
type PlacedModel struct {
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
}

func newMarker(id string) *Marker {
	return &Marker{VersionID: id, Nodes: map[string]string{}, Models: map[string]PlacedModel{}}
}

// ReadMarker loads a build's marker; a build without one gives an empty
// marker (everything to do).
func ReadMarker(buildDir, id string) (*Marker, error) {
	b, err := os.ReadFile(filepath.Join(buildDir, MarkerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return newMarker(id), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read build marker: %w", err)
	}
	m := newMarker(id)
	if err := json.Unmarshal(b, m); err != nil {
		// A marker we cannot read means state we cannot trust: redo all.
		return newMarker(id), nil
	}
	if m.Nodes == nil {
		m.Nodes = map[string]string{}
	}
	if m.Models == nil {
		m.Models = map[string]PlacedModel{}
	}
	return m, nil
}

func (m *Marker) write(buildDir string) error {
	m.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(buildDir, MarkerFile), append(b, '\n'), 0o644)
}

// LockDigest identifies a lock's content apart from when it was resolved.
func LockDigest(l *lock.Lock) string {
	c := *l
	c.ResolvedAt = time.Time{}
	c.SourceSpec = ""
	b, _ := json.Marshal(&c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// pythonInputs digests the lock's inputs of the Python install.
func pythonInputs(l *lock.Lock) string {
	h := sha256.New()
	fmt.Fprintf(h, "core %s\npython %q\nsystem-site %v\n", l.Comfy.Commit, l.Options.PythonOrDefault(), l.Options.SystemSitePackages)
	if l.Options.SkipPython {
		h.Write([]byte("skip-python\n")) // only when on: older markers stay valid
	}
	for _, n := range l.CustomNodes {
		if n.InstallRequirements {
			fmt.Fprintf(h, "node %s %s\n", n.Dir, n.Commit)
		}
	}
	for _, p := range l.PythonPackages {
		fmt.Fprintf(h, "package %q\n", p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// statModel returns the stat data recorded for a placed model.
func statModel(path string) (PlacedModel, bool) {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return PlacedModel{}, false
	}
	return PlacedModel{Size: st.Size(), ModTime: st.ModTime().UnixNano()}, true
}
