package realize

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// StandardFolders are ComfyUI's model folder types. Every one is exposed
// from the shared models directory, so a workflow finds a model placed by
// any version (or by hand) without per-version configuration.
var StandardFolders = []string{
	"audio_encoders", "checkpoints", "classifiers", "clip", "clip_vision", "configs",
	"controlnet", "diffusers", "diffusion_models", "embeddings", "gligen",
	"hypernetworks", "loras", "model_patches", "photomaker", "style_models",
	"text_encoders", "unet", "upscale_models", "vae", "vae_approx",
}

// ExtraModelPaths renders extra_model_paths.yaml for a build in buildDir
// whose models live in modelsDir. base_path is relative to the build when
// both share a parent (one network volume), so the file stays right when
// the volume is mounted elsewhere; ComfyUI resolves a relative base_path
// against the file's directory, which is also its working directory here.
// Folder values are strings: ComfyUI splits them on newlines and crashes on
// YAML lists. Non-standard folders that the lock's models use are added.
func ExtraModelPaths(buildDir, modelsDir string, l *lock.Lock) string {
	base := modelsDir
	if rel, ok := relativeWithin(buildDir, modelsDir); ok {
		base = rel
	}
	folders := map[string]bool{}
	for _, f := range StandardFolders {
		folders[f] = true
	}
	for _, m := range l.Models {
		t, err := spec.ParseTarget(m.TargetPath)
		if err == nil && t.Root == spec.ModelsRoot && t.Folder() != "" {
			folders[t.Folder()] = true
		}
	}
	names := make([]string, 0, len(folders))
	for f := range folders {
		names = append(names, f)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# Written by worker realize: the shared models directory, for every folder type.\n")
	b.WriteString("runpod_comfy_models:\n")
	fmt.Fprintf(&b, "  base_path: %s\n", yamlString(base))
	b.WriteString("  is_default: true\n")
	for _, f := range names {
		fmt.Fprintf(&b, "  %s: %s\n", f, yamlString(f+"/"))
	}
	return b.String()
}

// relativeWithin returns target relative to from when the two only differ
// below a common ancestor that is not the filesystem root.
func relativeWithin(from, target string) (string, bool) {
	from, target = filepath.Clean(from), filepath.Clean(target)
	rel, err := filepath.Rel(from, target)
	if err != nil {
		return "", false
	}
	common := from
	for !strings.HasPrefix(target+string(filepath.Separator), common+string(filepath.Separator)) {
		parent := filepath.Dir(common)
		if parent == common {
			return "", false // only the root is shared
		}
		common = parent
	}
	if common == string(filepath.Separator) || common == "." {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// yamlString quotes a value so YAML reads it back as the same string.
func yamlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
