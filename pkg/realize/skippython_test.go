package realize

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/pyenv"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

// TestSkipPythonInstallsNothing: a version whose interpreter already has
// every package (a base image) realizes with no index and no wheels when
// options.skip_python is on: ComfyUI's requirements.txt is not even read,
// and the build's python sees the interpreter's packages. With only
// install_requirements off, pip still runs on ComfyUI's requirements and
// fails without an index: the difference the docs describe.
func TestSkipPythonInstallsNothing(t *testing.T) {
	f := newFixture(t)
	alpha, err := pyenvtest.BuildWheel(t.TempDir(), "alpha", "1.0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := pyenvtest.NewBase(filepath.Join(f.dir, "base"), pyenvtest.Python(t), alpha)
	if err != nil {
		t.Fatal(err)
	}
	doc := func(options string) string {
		return fmt.Sprintf(`{"schema_version": 2, "version_id": "v",
		  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "commit": "%s"},
		  "options": {"python": %q, %s}}`, f.core.Head(), base.Python, options)
	}
	// No wheels and no index: any pip run fails.
	cfg := f.config()
	cfg.Python = pyenv.Config{Offline: true, UV: pyenv.UVNever, Env: pyenvtest.IsolatedEnv()}

	f.setSpec(doc(`"install_requirements": false`))
	_, err = Realize(context.Background(), cfg, f.lock)
	var re *Error
	if !errors.As(err, &re) || re.Step != "python" {
		t.Fatalf("install_requirements false, no index: want the python step to fail (pip still installs ComfyUI's requirements), got %v", err)
	}

	f.setSpec(doc(`"skip_python": true`))
	res, err := Realize(context.Background(), cfg, f.lock)
	if err != nil {
		t.Fatalf("skip_python: %v", err)
	}
	if !strings.Contains(fmt.Sprint(res.Steps), "skipped (skip_python)") {
		t.Errorf("steps %+v do not say the install was skipped", res.Steps)
	}
	if out := pythonIn(t, f.build, "import alpha, importlib.util; print(importlib.util.find_spec('pip') is None)"); out != "True" {
		t.Errorf("build python: pip present or alpha missing: %s", out)
	}
	m, _ := ReadMarker(f.build, "v")
	if !m.Complete || m.PythonFreeze != nil {
		t.Errorf("marker = %+v", m)
	}
	// Nothing changed: the next realize is a no-op.
	if res, err = Realize(context.Background(), cfg, f.lock); err != nil || !res.NoOp {
		t.Fatalf("second realize: noop=%v err=%v", res != nil && res.NoOp, err)
	}
	// The dry run says so too.
	p, err := DryRun(context.Background(), cfg, f.lock)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	p.WriteText(&b)
	if !strings.Contains(b.String(), "skip_python") {
		t.Errorf("dry run does not mention skip_python:\n%s", b.String())
	}
	if _, err := os.Stat(filepath.Join(f.build, ".venv", "bin", "pip")); err == nil {
		t.Error("the venv has a pip script")
	}
}
