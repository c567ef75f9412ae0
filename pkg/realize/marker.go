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
	// LockDigest identifies the lock the build was completed from;
	// DiskDigest the part of it that decides what is on disk (no env, no
	// ComfyUI arguments), which is what a later realize compares.
	LockDigest string `json:"lock_digest"`
	DiskDigest string `json:"disk_digest,omitempty"`
	// BuildKey is the name of an immutable build in the version's store
	// (empty for a build made in place).
	BuildKey string `json:"build_key,omitempty"`
	Complete bool   `json:"complete"`
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
// later run trust it without hashing gigabytes again, and the sources it
// came from: a model whose sources change is another model, even at the
// same target.
type PlacedModel struct {
	SHA256  string   `json:"sha256"`
	Size    int64    `json:"size"`
	ModTime int64    `json:"mtime_ns"`
	Sources []string `json:"sources,omitempty"`
}

// modelSources are a lock model's sources in order (the first is Source).
func modelSources(lm lock.Model) []string {
	if len(lm.Sources) > 0 {
		return lm.Sources
	}
	return []string{lm.Source}
}

func sameSources(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// matches reports whether what was placed at lm's target is lm's model:
// its checksum when the lock has one, else the same sources (the digest
// they gave was learned on download).
func (p PlacedModel) matches(lm lock.Model) bool {
	if p.SHA256 == "" {
		return false
	}
	if lm.SHA256 != "" {
		return p.SHA256 == lm.SHA256
	}
	return sameSources(p.Sources, modelSources(lm))
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

// completeFor reports whether the marker was completed for what l puts on
// disk (markers of earlier releases: for l itself).
func (m *Marker) completeFor(l *lock.Lock) bool {
	if m.DiskDigest != "" {
		return m.DiskDigest == DiskDigest(l)
	}
	return m.LockDigest == LockDigest(l)
}

// CompleteFor reports whether the build the marker describes is complete
// for l, as far as the marker can tell (without checking the files).
func (m *Marker) CompleteFor(l *lock.Lock) bool { return m.Complete && m.completeFor(l) }

// DiskDigest identifies what a lock puts on disk: the commits, the Python
// inputs and the models, without the environment and ComfyUI arguments
// that only the next ComfyUI start uses.
func DiskDigest(l *lock.Lock) string {
	c := *l
	c.ResolvedAt = time.Time{}
	c.SourceSpec = ""
	c.SpecDigest = ""
	c.Env = nil
	c.Options.ComfyArgs = nil
	c.Options.Offline = false
	// How a commit was found (ref names) and where a digest came from do
	// not change the files.
	c.Comfy.Ref, c.Comfy.SpecCommit = "", ""
	c.CustomNodes = append([]lock.Node(nil), l.CustomNodes...)
	for i := range c.CustomNodes {
		c.CustomNodes[i].Ref, c.CustomNodes[i].SpecCommit = "", ""
	}
	c.Models = append([]lock.Model(nil), l.Models...)
	for i := range c.Models {
		c.Models[i].DigestFrom = ""
	}
	b, _ := json.Marshal(&c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
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
