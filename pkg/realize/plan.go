package realize

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/pyenv"
)

// Plan is what a realize would do, computed without changing anything.
type Plan struct {
	VersionID string     `json:"version_id"`
	BuildDir  string     `json:"build_dir"`
	ModelsDir string     `json:"models_dir"`
	Complete  bool       `json:"complete"`
	Items     []PlanItem `json:"items"`
	// Python describes the interpreter, tool and flags of the Python step.
	Python string `json:"python"`
	// DownloadBytes sums the known sizes of models to download;
	// UnknownSizes counts those whose size is not known before download.
	DownloadBytes int64 `json:"download_bytes"`
	UnknownSizes  int   `json:"unknown_sizes"`
}

// PlanItem is one thing the build needs. Action is "present" (nothing to
// do), "export", "install", "link" (in the cache, to be linked),
// "download" or "write".
type PlanItem struct {
	Step   string `json:"step"`
	Item   string `json:"item"`
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
	Size   int64  `json:"size,omitempty"`
}

// DryRun computes the plan for realizing l with cfg. It reads the build's
// marker and the caches and writes nothing.
func DryRun(ctx context.Context, cfg Config, l *lock.Lock) (*Plan, error) {
	build, err := filepath.Abs(cfg.BuildDir)
	if err != nil {
		return nil, err
	}
	cfg.BuildDir = build
	dir := build
	if !cfg.InPlace {
		if cur, _, err := Current(build); err == nil && cur != "" {
			dir = cur
		}
	}
	m, err := ReadMarker(dir, l.VersionID)
	if err != nil {
		return nil, err
	}
	r := newRun(cfg, l, dir)
	r.marker = m
	p := &Plan{VersionID: l.VersionID, BuildDir: build, ModelsDir: cfg.ModelsDir, Complete: r.upToDate()}
	add := func(step, item, action, detail string, size int64) {
		p.Items = append(p.Items, PlanItem{Step: step, Item: item, Action: action, Detail: detail, Size: size})
	}
	if m.Core == l.Comfy.Commit && exists(r.path("main.py")) {
		add("core", "ComfyUI", "present", short(l.Comfy.Commit), 0)
	} else {
		add("core", "ComfyUI", "export", l.Comfy.Repo+" @ "+short(l.Comfy.Commit), 0)
	}
	for _, n := range l.CustomNodes {
		if m.Nodes[n.Dir] == n.Commit && exists(r.path("custom_nodes", n.Dir)) {
			add("custom_nodes", n.Name, "present", short(n.Commit), 0)
		} else {
			add("custom_nodes", n.Name, "export", n.Repo.Repo+" @ "+short(n.Commit), 0)
		}
	}
	in := r.newInstaller()
	plan := r.pythonPlan()
	if d, err := in.Describe(ctx, plan); err == nil {
		p.Python = d.String()
	} else {
		p.Python = "unavailable: " + err.Error()
	}
	pyAction, pyDetail := "install", units.Count(len(plan.Nodes), "node requirement file")+", "+units.Count(len(plan.Packages), "package")
	if l.Options.SkipPython {
		pyAction, pyDetail = "venv", "without pip, nothing installed (skip_python)"
	}
	if m.Python != "" && exists(r.path(pyenv.VenvDirName, "bin", "python")) {
		if m.PythonInputs == pythonInputs(l) {
			pyAction = "present"
		} else {
			pyDetail += "; the core, a node with requirements, the packages or the interpreter changed: pip runs if the requirements did"
		}
	}
	add("python", "venv + requirements", pyAction, pyDetail, 0)
	if r.skipModels() {
		add("models", "all", "present", "skipped (skip_models)", 0)
	} else {
		for _, lm := range l.Models {
			target, err := r.linkPath(lm.TargetPath)
			if err != nil {
				return nil, fmt.Errorf("model %s: %w", lm.Name, err)
			}
			if placed, ok := m.Models[lm.TargetPath]; ok {
				if st, ok := statModel(target); ok && st.Size == placed.Size && st.ModTime == placed.ModTime {
					add("models", lm.Name, "present", target, placed.Size)
					continue
				}
			}
			if cfg.Models != nil {
				if b, ok, _ := cfg.Models.Lookup(request(lm)); ok {
					add("models", lm.Name, "link", "cached blob -> "+target, b.Size)
					continue
				}
			}
			size := lm.Size
			if size == 0 && cfg.Models != nil {
				size = cfg.Models.LocalSize(lm.FetchSources()[0])
			}
			add("models", lm.Name, "download", models.RedactString(lm.Source)+" -> "+target, size)
			if size > 0 {
				p.DownloadBytes += size
			} else {
				p.UnknownSizes++
			}
		}
	}
	if _, err := os.Stat(r.path("extra_model_paths.yaml")); err == nil && m.ExtraModelPaths != "" {
		add("extra_model_paths", "extra_model_paths.yaml", "present", "", 0)
	} else {
		add("extra_model_paths", "extra_model_paths.yaml", "write", "", 0)
	}
	return p, nil
}

// WriteText prints the plan for people.
func (p *Plan) WriteText(w io.Writer) {
	fmt.Fprintf(w, "[DRY-RUN] %s: nothing is written\nbuild: %s\nmodels_dir: %s\n", p.VersionID, p.BuildDir, p.ModelsDir)
	if p.Complete {
		fmt.Fprintln(w, "state: complete (a realize would do nothing)")
	}
	step := ""
	for _, it := range p.Items {
		if it.Step != step {
			step = it.Step
			fmt.Fprintf(w, "%s:\n", step)
		}
		size := ""
		if it.Size > 0 {
			size = " (" + units.Bytes(it.Size) + ")"
		}
		fmt.Fprintf(w, "  %-8s %s%s  %s\n", it.Action, it.Item, size, it.Detail)
	}
	fmt.Fprintf(w, "python:\n  %s\n", p.Python)
	fmt.Fprintf(w, "to download: %s", units.Bytes(p.DownloadBytes))
	if p.UnknownSizes > 0 {
		fmt.Fprintf(w, " + %s of unknown size", units.Count(p.UnknownSizes, "model"))
	}
	fmt.Fprintln(w)
}
