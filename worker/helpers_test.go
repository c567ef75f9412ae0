package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/internal/gittest"
)

// testEnv runs the CLI in-process with its own environment, cache and
// versions directory, against repositories served by a real git server.
type testEnv struct {
	t    testing.TB
	dir  string
	vars map[string]string
	srv  *gittest.Server
}

func newTestEnv(t *testing.T) *testEnv { return newTestEnvTB(t) }

func newTestEnvTB(t testing.TB) *testEnv {
	t.Helper()
	dir := t.TempDir()
	srv := gittest.NewServer(t)
	e := &testEnv{t: t, dir: dir, srv: srv, vars: map[string]string{
		"HOME":               dir,
		"COMFY_VERSIONS_DIR": filepath.Join(dir, "versions"),
		"COMFY_CACHE_ROOT":   filepath.Join(dir, "cache"),
		"COMFY_BUILDS_ROOT":  filepath.Join(dir, "builds"),
		"RUNPOD_VOLUME_ROOT": filepath.Join(dir, "no-volume"),
		"COMFY_LOCAL_DIR":    filepath.Join(dir, "local"),
		"COMFY_LOG_FORMAT":   "json",
		// Specs name GitHub; the test server answers for it.
		"COMFY_GIT_REWRITE": "https://github.com/=" + srv.URL + "/github.com/",
	}}
	os.MkdirAll(e.vars["COMFY_VERSIONS_DIR"], 0o755)
	return e
}

func (e *testEnv) getenv(k string) string { return e.vars[k] }

// run executes worker with args and returns its exit code and streams.
func (e *testEnv) run(args ...string) (int, string, string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb, e.getenv)
	return code, out.String(), errb.String()
}

// mustRun fails the test unless worker exits 0.
func (e *testEnv) mustRun(args ...string) string {
	e.t.Helper()
	code, out, errs := e.run(args...)
	if code != 0 {
		e.t.Fatalf("worker %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// publish serves a repo with a commit on main (and any extra branches)
// under github.com/<owner>/<name> and returns it.
func (e *testEnv) publish(ownerRepo string, branches ...string) *gittest.Repo {
	e.t.Helper()
	r := gittest.NewRepo(e.t)
	r.Commit("initial", map[string]string{"README.md": ownerRepo, "requirements.txt": ""})
	for _, b := range branches {
		r.Branch(b)
	}
	e.srv.Add("github.com/"+ownerRepo, r)
	return r
}

func (e *testEnv) writeSpec(id, body string) string {
	e.t.Helper()
	p := filepath.Join(e.vars["COMFY_VERSIONS_DIR"], id+".json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *testEnv) writeFile(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}
