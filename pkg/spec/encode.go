package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// File shapes: what Marshal writes. Field order is the reading order of a
// spec (core, nodes, models, extras); omitted fields read back the same.
type fileRepo struct {
	Repo   string `json:"repo"`
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
}

type fileNode struct {
	Name                string `json:"name"`
	Repo                string `json:"repo"`
	Ref                 string `json:"ref,omitempty"`
	Commit              string `json:"commit,omitempty"`
	TargetDir           string `json:"target_dir,omitempty"`
	InstallRequirements *bool  `json:"install_requirements,omitempty"`
}

type fileModel struct {
	Name       string `json:"name"`
	Source     string `json:"source"`
	TargetPath string `json:"target_path"`
	Checksum   string `json:"checksum,omitempty"`
	Size       int64  `json:"size,omitempty"`
}

type fileSpec struct {
	SchemaVersion  int               `json:"schema_version"`
	VersionID      string            `json:"version_id"`
	Description    string            `json:"description,omitempty"`
	Comfy          fileRepo          `json:"comfy"`
	CustomNodes    []fileNode        `json:"custom_nodes"`
	Models         []fileModel       `json:"models"`
	PythonPackages []string          `json:"python_packages,omitempty"`
	Env            map[string]string `json:"env"`
	Options        Options           `json:"options"`
}

func (s *Spec) file() fileSpec {
	f := fileSpec{
		SchemaVersion:  SchemaVersion,
		VersionID:      s.ID,
		Description:    s.Description,
		Comfy:          fileRepo{Repo: s.Comfy.URL, Ref: s.Comfy.Ref, Commit: s.Comfy.Commit},
		CustomNodes:    []fileNode{},
		Models:         []fileModel{},
		PythonPackages: s.PythonPackages,
		Env:            s.Env,
		Options:        s.Options,
	}
	if f.Env == nil {
		f.Env = map[string]string{}
	}
	for _, n := range s.CustomNodes {
		fn := fileNode{Name: n.Name, Repo: n.URL, Ref: n.Ref, Commit: n.Commit, InstallRequirements: n.InstallRequirements}
		if n.Dir != n.Name {
			fn.TargetDir = "$COMFY_HOME/custom_nodes/" + n.Dir
		}
		f.CustomNodes = append(f.CustomNodes, fn)
	}
	for _, m := range s.Models {
		// Alternative sources go back to one entry each, the shape the
		// original's readers know.
		for _, src := range m.Sources {
			fm := fileModel{Name: m.Name, Source: src, TargetPath: m.Target.String(), Size: m.Size}
			if m.SHA256 != "" {
				fm.Checksum = "sha256:" + m.SHA256
			}
			f.Models = append(f.Models, fm)
		}
	}
	return f
}

// Marshal renders the spec as an indented schema-2 file that Decode reads
// back to the same spec.
func (s *Spec) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.file()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Digest identifies the spec's meaning: formatting, key order and warnings
// do not change it, any edit that could change a build does.
func (s *Spec) Digest() string {
	b, err := json.Marshal(s.file())
	if err != nil {
		panic(err) // plain strings, maps and slices always marshal
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
