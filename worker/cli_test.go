package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
	"github.com/runpod-comfy/worker/pkg/version"
)

func TestVersionLifecycle(t *testing.T) {
	e := newTestEnv(t)
	core := e.publish("comfyanonymous/ComfyUI", "master")
	core.AnnotatedTag("v0.3.60", "release")
	nodeA := e.publish("kijai/ComfyUI-KJNodes")
	fork := e.publish("someone/ComfyUI-KJNodes") // same name, other owner
	_ = fork
	nodeB := gittest.NewRepo(t) // reached over file://
	nodeB.Commit("b", map[string]string{"__init__.py": ""})
	nodeB.Tag("v2")

	nodesFile := e.writeFile("nodes.json", `[
	  {"name": "kj", "repo": "https://github.com/kijai/ComfyUI-KJNodes", "commit": "main", "install_requirements": true},
	  {"name": "kj-fork", "repo": "https://github.com/someone/ComfyUI-KJNodes.git", "commit": "main", "target_dir": "$COMFY_HOME/custom_nodes/kjfork"}
	]`)
	modelsFile := e.writeFile("models/flux.yml", "models:\n  - name: \"vae\"\n    source: \"hf://org/repo/vae.safetensors\"\n    target_path: \"$MODELS_DIR/vae/vae.safetensors\"\n")
	out := e.mustRun("create", "demo", "--repo", "https://github.com/comfyanonymous/ComfyUI@v0.3.60",
		"--nodes-file", nodesFile, "--nodes", nodeB.FileURL()+"@v2", "--models-file", modelsFile,
		"--models", `{"source": "https://example.com/l.safetensors", "target_subdir": "loras"}`)
	if !strings.Contains(out, "[OK] created demo") {
		t.Fatalf("create output: %s", out)
	}
	s, err := spec.LoadFile(filepath.Join(e.vars["COMFY_VERSIONS_DIR"], "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Comfy.Commit != core.Head() || s.Comfy.Ref != "v0.3.60" {
		t.Errorf("core = %+v, want the peeled tag commit %s", s.Comfy, core.Head())
	}
	if len(s.CustomNodes) != 3 || s.CustomNodes[0].Commit != nodeA.Head() || s.CustomNodes[1].Dir != "kjfork" || s.CustomNodes[2].Commit != nodeB.Head() || s.CustomNodes[2].Ref != "v2" {
		t.Errorf("nodes = %+v", s.CustomNodes)
	}
	if len(s.Models) != 2 || s.Models[0].Name != "vae" || s.Models[1].Target.String() != "$MODELS_DIR/loras/l.safetensors" {
		t.Errorf("models = %+v", s.Models)
	}

	// validate: the lock written by create answers; no request at all.
	before := e.srv.Requests()
	out = e.mustRun("validate", "demo")
	if e.srv.Requests() != before {
		t.Errorf("validate of an unchanged spec made %d requests", e.srv.Requests()-before)
	}
	for _, want := range []string{"[OK] demo", "comfy: https://github.com/comfyanonymous/ComfyUI v0.3.60 -> " + core.Head(), "kj-fork (dir kjfork)", "vae -> $MODELS_DIR/vae/vae.safetensors"} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	var p version.Validation
	if err := json.Unmarshal([]byte(e.mustRun("validate", "demo", "--json")), &p); err != nil {
		t.Fatal(err)
	}
	if p.VersionID != "demo" || len(p.CustomNodes) != 3 || p.Comfy.Commit != core.Head() || !p.LockReused {
		t.Errorf("json plan = %+v", p)
	}

	// list shows the version with a current lock.
	out = e.mustRun("list")
	if !strings.Contains(out, "demo") || !strings.Contains(out, "current") {
		t.Errorf("list: %s", out)
	}

	// clone, then edit the clone to follow a branch: only that is resolved.
	e.mustRun("clone", "demo", "demo2")
	if code, _, errs := e.run("clone", "demo", "demo2"); code != 2 || !strings.Contains(errs, "--force") {
		t.Errorf("clone over an existing spec: exit %d, %s", code, errs)
	}
	p2 := filepath.Join(e.vars["COMFY_VERSIONS_DIR"], "demo2.json")
	s2, err := spec.LoadFile(p2)
	if err != nil {
		t.Fatal(err)
	}
	s2.CustomNodes[0].Commit = "" // follow main instead of the pinned commit
	data, _ := s2.Marshal()
	os.WriteFile(p2, data, 0o644)
	e.mustRun("resolve", "demo2")
	newA := nodeA.Commit("second", map[string]string{"x": "1"})
	before = e.srv.Requests()
	e.mustRun("validate", "demo2")
	if e.srv.Requests() != before {
		t.Error("the branch drifted without --update")
	}
	out = e.mustRun("validate", "demo2", "--update")
	if !strings.Contains(out, newA) {
		t.Errorf("--update did not move kj to %s:\n%s", newA, out)
	}
	if e.srv.RequestsFor("github.com/kijai/ComfyUI-KJNodes") == 0 {
		t.Error("no request reached the node's repository")
	}

	// delete removes the build and the lock.
	build := filepath.Join(e.vars["COMFY_BUILDS_ROOT"], "comfy-demo2")
	os.MkdirAll(filepath.Join(build, "custom_nodes"), 0o755)
	e.mustRun("delete", "demo2", "--remove-spec")
	for _, p := range []string{build, lock.Path(e.vars["COMFY_CACHE_ROOT"], "demo2"), p2} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists after delete", p)
		}
	}
}

func TestExitCodesAndMessages(t *testing.T) {
	e := newTestEnv(t)
	e.publish("comfyanonymous/ComfyUI", "master")
	e.writeSpec("bad", `{"schema_version": 2, "version_id": "bad", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI"},
	  "models": [{"source": "hf://a/b/c", "target_path": "$MODELS_DIR/../../etc/passwd"}]}`)
	e.writeSpec("good", `{"schema_version": 2, "version_id": "good", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "master"}}`)
	e.writeSpec("missing-ref", `{"schema_version": 2, "version_id": "missing-ref", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "mian"}}`)
	outside := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"validate", "bad"}, 2, `bad.json: models[0].target_path: target path \"$MODELS_DIR/../../etc/passwd\" escapes`},
		{[]string{"validate", "nope"}, 2, `version \"nope\" not found`},
		{[]string{"validate", "../x"}, 2, "no spec file ../x"},
		{[]string{"validate", "bad@1234.json"}, 2, "no spec file"},
		{[]string{"validate"}, 2, "worker validate needs <id>"},
		{[]string{"clone", "good"}, 2, "worker clone needs <dst>"},
		{[]string{"list", "x"}, 2, "worker list takes no arguments"},
		{[]string{"valdate", "good"}, 2, "did you mean validate?"},
		{[]string{"delete", "nope"}, 1, "nothing to delete"},
		{[]string{"run-handler", "good", "--workflow", "w.json", "--timeout", "soon"}, 2, "want a duration such as 90s"},
		{[]string{"validate", "good", "--bogus"}, 2, "unknown flag"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"validate", "good", "--offline"}, 1, "run `worker resolve good` with network access first"},
		{[]string{"validate", "missing-ref"}, 1, `ref \"mian\" not found`},
		{[]string{"create", "x"}, 2, "--repo is required"},
		{[]string{"delete", "good", "--target", "/"}, 2, "refusing to delete /"},
		{[]string{"clone", "good", "bad id"}, 2, "invalid version id"},
		{[]string{"clone", "good", "other", "--output", filepath.Join(outside, "third.json")}, 2, "name the file other.json"},
		{[]string{"create", "foo", "--repo", "https://github.com/comfyanonymous/ComfyUI", "--output", filepath.Join(outside, "bar.json")}, 2, "name the file foo.json"},
	} {
		code, out, errs := e.run(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("worker %v: exit %d (want %d)\nstderr: %s\nwant it to contain %s", tc.args, code, tc.code, errs, tc.msg)
		}
		if out != "" {
			t.Errorf("worker %v printed to stdout on failure: %q", tc.args, out)
		}
	}
	// A COMFY_HOME outside the builds root is only deleted when named.
	e.vars["COMFY_HOME"] = outside
	if code, _, errs := e.run("delete", "good"); code != 2 || !strings.Contains(errs, "outside the builds root") {
		t.Errorf("delete outside the builds root: exit %d %s", code, errs)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatal("the outside directory was removed")
	}
	e.mustRun("delete", "good", "--target", outside)
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Error("explicit --target was not removed")
	}
}

func TestCreateFromSnapshot(t *testing.T) {
	e := newTestEnv(t)
	core := e.publish("comfyanonymous/ComfyUI")
	n := e.publish("ltdrdata/ComfyUI-Impact-Pack")
	snap := e.writeFile("snap.json", `{"comfyui": "`+core.Head()+`",
	  "git_custom_nodes": {"https://github.com/ltdrdata/ComfyUI-Impact-Pack": {"hash": "`+n.Head()+`", "disabled": false},
	                       "https://github.com/x/disabled": {"hash": "`+n.Head()+`", "disabled": true}},
	  "cnr_custom_nodes": {"comfyui-kjnodes": "1.1.0"}, "file_custom_nodes": [], "pips": {"torch==2.5.1": ""}}`)
	before := e.srv.Requests()
	e.mustRun("create", "snap", "--from-snapshot", snap)
	if e.srv.Requests() != before {
		t.Error("a snapshot pins every commit: no request should be needed")
	}
	s, err := spec.LoadFile(filepath.Join(e.vars["COMFY_VERSIONS_DIR"], "snap.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Comfy.URL != version.OfficialComfyRepo || s.Comfy.Commit != core.Head() || len(s.CustomNodes) != 1 || s.CustomNodes[0].Commit != n.Head() {
		t.Errorf("spec from snapshot = %+v %+v", s.Comfy, s.CustomNodes)
	}
}

// TestDeleteOnlyItsOwnBuild: delete removes a build only when it is the
// named version's: not another version's under a shared COMFY_HOME, not a
// directory the worker did not make.
func TestDeleteOnlyItsOwnBuild(t *testing.T) {
	e := newTestEnv(t)
	home := filepath.Join(e.vars["COMFY_BUILDS_ROOT"], "comfy-v1")
	os.MkdirAll(home, 0o755)
	os.WriteFile(filepath.Join(home, ".worker-build.json"), []byte(`{"version_id": "v1", "complete": true}`), 0o644)
	os.WriteFile(filepath.Join(home, "main.py"), nil, 0o644)
	foreign := filepath.Join(e.vars["COMFY_BUILDS_ROOT"], "ComfyUI")
	os.MkdirAll(filepath.Join(foreign, "models"), 0o755)
	os.WriteFile(filepath.Join(foreign, "models", "mine.safetensors"), []byte("x"), 0o644)

	e.vars["COMFY_HOME"] = home
	if code, _, errs := e.run("delete", "other"); code != 1 || !strings.Contains(errs, "holds version v1, not other") {
		t.Errorf("delete of another id under COMFY_HOME: exit %d %s", code, errs)
	}
	if code, _, errs := e.run("delete", "v1", "--target", foreign); code != 1 || !strings.Contains(errs, "was not made by the worker") {
		t.Errorf("delete of a foreign directory: exit %d %s", code, errs)
	}
	for _, p := range []string{filepath.Join(home, "main.py"), filepath.Join(foreign, "models", "mine.safetensors")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s was removed", p)
		}
	}
	e.mustRun("delete", "v1")
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Error("v1's own build was not removed")
	}
}

// TestValidateParsesModelSources: a source that realize could never
// download is a spec error (exit 2) at validate, not a failure after the
// trees and the venv are built.
func TestValidateParsesModelSources(t *testing.T) {
	e := newTestEnv(t)
	e.publish("comfyanonymous/ComfyUI")
	for i, src := range []string{"hf://org/model.safetensors", "civitai://models/abc", "gs://Bad_Bucket/x.bin"} {
		id := fmt.Sprintf("s%d", i)
		e.writeSpec(id, fmt.Sprintf(`{"schema_version": 2, "version_id": "%s", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "master"},
		  "models": [{"source": "%s", "target_path": "$MODELS_DIR/checkpoints/x.bin"}]}`, id, src))
		for _, cmd := range []string{"validate", "realize"} {
			code, _, errs := e.run(cmd, id)
			if code != 2 || !strings.Contains(errs, "models: model") || !strings.Contains(errs, src) {
				t.Errorf("%s with source %s: exit %d\n%s", cmd, src, code, errs)
			}
		}
	}
}

// TestValidateExpandsAnOldAbbreviatedCommit: a short SHA of a commit no
// ref points at any more is expanded to the full SHA in the lock.
func TestValidateExpandsAnOldAbbreviatedCommit(t *testing.T) {
	e := newTestEnv(t)
	core := e.publish("comfyanonymous/ComfyUI")
	old := core.Commit("old", map[string]string{"main.py": "1\n"})
	core.Commit("new", map[string]string{"main.py": "2\n"})
	e.writeSpec("short", `{"schema_version": 2, "version_id": "short", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "commit": "`+old[:9]+`"}}`)
	e.mustRun("validate", "short")
	data, err := os.ReadFile(lock.Path(e.vars["COMFY_CACHE_ROOT"], "short"))
	if err != nil || !strings.Contains(string(data), old) {
		t.Fatalf("the lock does not pin %s: %v\n%s", old, err, data)
	}
}
