package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/endpoint/endpointtest"
)

func TestCallCommand(t *testing.T) {
	e := newTestEnv(t)
	api := endpointtest.New(endpointtest.Config{})
	t.Cleanup(api.Close)
	png := []byte("\x89PNG result bytes")
	out := map[string]any{"version_id": "demo", "output_mode": "base64",
		"outputs": []map[string]any{{"node_id": "2", "filename": "img_00001_.png", "type": "output", "base64": base64.StdEncoding.EncodeToString(png)}}}
	doc, _ := json.Marshal(out)
	api.Next(endpointtest.Behavior{Running: 2, Output: doc})
	input := e.writeFile("test_input.json", `{"input": {"version_id": "demo", "workflow": {}}}`)
	e.vars["RUNPOD_API_KEY"] = api.APIKey()
	dir := filepath.Join(e.dir, "results")
	stdout := e.mustRun("call", "--endpoint", api.EndpointID(), "--api-url", api.URL, "--input", input, "--out-dir", dir)
	if !strings.Contains(stdout, `"COMPLETED"`) {
		t.Fatalf("stdout: %s", stdout)
	}
	got, err := os.ReadFile(filepath.Join(dir, "img_00001_.png"))
	if err != nil || !bytes.Equal(got, png) {
		t.Fatalf("written file: %v %q", err, got)
	}
	// A failed job: exit 1, the endpoint's error on stderr.
	api.Next(endpointtest.Behavior{Error: "invalid input: version_id: required"})
	code, _, errs := e.run("call", "--endpoint", api.EndpointID(), "--api-url", api.URL, "--input", input, "--sync")
	if code != 1 || !strings.Contains(errs, "version_id: required") {
		t.Fatalf("failed job: exit %d %s", code, errs)
	}
	delete(e.vars, "RUNPOD_API_KEY")
	if code, _, errs := e.run("call", "--endpoint", "x"); code != 2 || !strings.Contains(errs, "RUNPOD_API_KEY") {
		t.Fatalf("no key: exit %d %s", code, errs)
	}
}
