package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/runpod-comfy/worker/internal/signals"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// TestInterruptExitCode: a command stopped by Ctrl+C exits 130 as in a
// shell; a worker told to stop with SIGTERM and stopping cleanly exits 0.
func TestInterruptExitCode(t *testing.T) {
	e := newTestEnv(t)
	e.writeSpec("good", `{"schema_version": 2, "version_id": "good", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "master"}}`)
	e.publish("comfyanonymous/ComfyUI", "master")
	for _, tc := range []struct {
		sig  syscall.Signal
		args []string
		want int
	}{
		{syscall.SIGINT, []string{"validate", "good"}, 130},
		{syscall.SIGTERM, []string{"validate", "good"}, 143},
		{syscall.SIGTERM, []string{"list"}, 0}, // finished cleanly
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(signals.Cause{Signal: tc.sig})
		code := run(ctx, tc.args, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}, e.getenv)
		if code != tc.want {
			t.Errorf("%v after %v: exit %d, want %d", tc.args, tc.sig, code, tc.want)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	e := newTestEnv(t)
	out := e.mustRun("--version")
	for _, want := range []string{"worker ", "commit: ", "go: go1."} {
		if !strings.Contains(out, want) {
			t.Errorf("--version printed %q; want it to contain %q", out, want)
		}
	}
}

// TestUpdateWritesCommitsIntoTheSpec: a spec that pins a commit beside its
// ref gets the new commit written into it by --update, keeping the rest of
// the file as the author wrote it, so spec and lock agree again.
func TestUpdateWritesCommitsIntoTheSpec(t *testing.T) {
	e := newTestEnv(t)
	core := e.publish("comfyanonymous/ComfyUI")
	node := e.publish("acme/ComfyUI-Acme")
	e.mustRun("create", "demo", "--repo", "https://github.com/comfyanonymous/ComfyUI@main", "--nodes", "https://github.com/acme/ComfyUI-Acme@main")
	path := filepath.Join(e.vars["COMFY_VERSIONS_DIR"], "demo.json")
	before, _ := os.ReadFile(path)
	s, _ := spec.LoadFile(path)
	if !s.Options.SystemSitePackages {
		t.Error("create did not default options.system_site_packages to true (the recommended image's torch)")
	}
	oldCore, oldNode := core.Head(), node.Head()
	core.Commit("next", map[string]string{"next.py": ""})
	node.Commit("next", map[string]string{"next.py": ""})
	e.mustRun("validate", "demo", "--update")
	after, _ := os.ReadFile(path)
	want := strings.NewReplacer(oldCore, core.Head(), oldNode, node.Head()).Replace(string(before))
	if string(after) != want {
		t.Errorf("spec after --update:\n%s\nwant only the commits changed:\n%s", after, want)
	}
	l, err := lock.Read(filepath.Join(e.vars["COMFY_CACHE_ROOT"], "resolved", "demo.lock.json"))
	if err != nil || l.Comfy.Commit != core.Head() || l.CustomNodes[0].Commit != node.Head() {
		t.Fatalf("lock after --update: %+v, %v", l, err)
	}
	if out := e.mustRun("list"); !strings.Contains(out, "current") {
		t.Errorf("list after --update shows the lock stale:\n%s", out)
	}
}

// TestValidateSpecByPath: a spec given as a path (the original's files,
// named <id>@<commit>.json) is validated, its id taken from the file name.
func TestValidateSpecByPath(t *testing.T) {
	e := newTestEnv(t)
	core := e.publish("comfyanonymous/ComfyUI", "master")
	p := e.writeFile("old/demo@ab91353.json", `{"schema_version": 2, "version_id": "demo",
	  "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "commit": "master"}}`)
	code, out, errs := e.run("validate", p, "--json")
	if code != 0 {
		t.Fatalf("validate %s: exit %d\n%s", p, code, errs)
	}
	var v struct {
		VersionID string `json:"version_id"`
		Comfy     struct {
			Commit string `json:"commit"`
		} `json:"comfy"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.VersionID != "demo" || v.Comfy.Commit != core.Head() {
		t.Errorf("validate by path = %+v, %v", v, err)
	}
	for _, want := range []string{"the version id is \\\"demo\\\"", "outside the spec directories"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}
