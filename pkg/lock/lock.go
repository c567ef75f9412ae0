// Package lock pins a spec: every ref resolved to a commit SHA and every
// model's digest once known, tied to the spec by its digest. Realize reads
// the lock, never the spec, so a branch does not drift until the user asks
// (--update). The file keeps the original tool's keys so its readers work.
package lock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/internal/jsonx"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Lock is the resolved form of a spec: <cache>/resolved/<id>.lock.json.
type Lock struct {
	SchemaVersion  int               `json:"schema_version"`
	VersionID      string            `json:"version_id"`
	SpecDigest     string            `json:"spec_digest"`
	Comfy          Repo              `json:"comfy"`
	CustomNodes    []Node            `json:"custom_nodes"`
	Models         []Model           `json:"models"`
	PythonPackages []string          `json:"python_packages"`
	Env            map[string]string `json:"env"`
	Options        spec.Options      `json:"options"`
	SourceSpec     string            `json:"source_spec"`
	ResolvedAt     time.Time         `json:"resolved_at"`

	// pkgs are PythonPackages with their credentials (see secrets.go).
	pkgs []string
}

// Repo is a repository pinned to Commit. Ref and SpecCommit repeat what the
// spec said, so an unchanged entry is recognised without a network call.
type Repo struct {
	Repo   string `json:"repo"`
	Ref    string `json:"ref"`
	Commit string `json:"commit"`
	// SpecCommit is the spec's commit field when it was not a full SHA
	// (an abbreviation), or the full SHA it pinned.
	SpecCommit string `json:"spec_commit,omitempty"`

	// url is Repo with its credentials (see secrets.go).
	url string
}

// Node is a locked custom node.
type Node struct {
	Name string `json:"name"`
	Repo
	Dir                 string `json:"dir"`
	InstallRequirements bool   `json:"install_requirements"`
}

// Model is a locked model. Source and Sources are redacted (see
// FetchSources). SHA256 and Size come from the spec's checksum or,
// for a model without one, from its first download (trust on first use).
type Model struct {
	Name         string   `json:"name"`
	Source       string   `json:"source"`
	Sources      []string `json:"sources,omitempty"`
	TargetSubdir string   `json:"target_subdir,omitempty"`
	TargetPath   string   `json:"target_path"`
	SHA256       string   `json:"sha256,omitempty"`
	Size         int64    `json:"size,omitempty"`
	// DigestFrom says where SHA256 came from: "spec" or "download".
	DigestFrom string `json:"digest_from,omitempty"`

	// fetch are the sources with their credentials (see secrets.go).
	fetch []string
}

// Path is where the lock of version id lives under the cache root.
func Path(cacheRoot, id string) string {
	return filepath.Join(cacheRoot, "resolved", id+".lock.json")
}

// ErrNoLock is returned by Read when the version has never been resolved.
var ErrNoLock = errors.New("no lock file")

// Read loads a lock file. A missing file gives ErrNoLock.
func Read(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoLock)
	}
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	var l Lock
	if err := json.Unmarshal(b, &l); err != nil {
		// The lock is a cache: say how to recreate it, in JSON terms.
		return nil, fmt.Errorf("read lock %s: %s (delete it and run `worker resolve` to recreate it)", path, jsonx.ErrorText(err))
	}
	if l.SchemaVersion != spec.SchemaVersion {
		return nil, fmt.Errorf("read lock %s: schema_version %d is not 2 (an old lock: delete it and run `worker resolve`)", path, l.SchemaVersion)
	}
	return &l, nil
}

// Write stores the lock atomically: readers on other workers see the old
// lock or the new one, never a torn file.
func Write(path string, l *Lock) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	return nil
}

// Model returns the locked model placed at target ("$MODELS_DIR/..."), or nil.
func (l *Lock) Model(targetPath string) *Model {
	for i := range l.Models {
		if l.Models[i].TargetPath == targetPath {
			return &l.Models[i]
		}
	}
	return nil
}

// RecordModel stores the digest and size learned by downloading a model
// whose spec gave no checksum. It reports whether the lock changed.
func (l *Lock) RecordModel(targetPath, sha256 string, size int64) bool {
	m := l.Model(targetPath)
	if m == nil || (m.SHA256 == sha256 && m.Size == size) {
		return false
	}
	if m.DigestFrom == "spec" {
		return false // the spec's checksum is authoritative; realize verified it
	}
	m.SHA256, m.Size, m.DigestFrom = sha256, size, "download"
	return true
}
