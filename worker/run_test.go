package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestExtraArgsCompat(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"run-ui v --extra-args -- --lowvram --fast", "run-ui v -- --lowvram --fast"},
		{"run-ui v --extra-args --lowvram", "run-ui v -- --lowvram"},
		{"run-ui v -- --extra-args", "run-ui v -- --extra-args"},
		{"run-ui v --port 1", "run-ui v --port 1"},
	} {
		if got := strings.Join(extraArgsCompat(strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRunHandlerCommand(t *testing.T) {
	e := newTestEnv(t)
	versionFixture(t, e)
	_, fake := binaries(t)
	t.Setenv("FAKE_COMFY_BIN", fake)
	e.vars["COMFY_SCRATCH_DIR"] = filepath.Join(e.dir, "scratch")
	wf := e.writeFile("wf.json", e2eWorkflow)
	outDir := filepath.Join(e.dir, "out")
	out := e.mustRun("run-handler", "demo", "--workflow", wf, "--out-dir", outDir)
	var doc struct {
		Output struct {
			Outputs []struct{ Filename, Base64 string } `json:"outputs"`
		} `json:"output"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Output.Outputs) != 1 {
		t.Fatalf("stdout is not one JSON result: %v\n%s", err, out)
	}
	written, err := os.ReadFile(filepath.Join(outDir, doc.Output.Outputs[0].Filename))
	if err != nil || !bytes.HasPrefix(written, []byte("\x89PNG")) {
		t.Fatalf("--out-dir: %v", err)
	}
	// The original's `--output base64 --out-file result.b64`: raw base64.
	b64 := filepath.Join(e.dir, "result.b64")
	e.mustRun("run-handler", "demo", "--workflow", wf, "--output", "base64", "--out-file", b64, "--raw-base64")
	raw, _ := os.ReadFile(b64)
	if dec, err := base64.StdEncoding.DecodeString(string(raw)); err != nil || !bytes.Equal(dec, written) {
		t.Fatalf("result.b64 is not the raw base64 of the output: %v", err)
	}
	// Failure: exit 1, the error in the JSON on stdout.
	bad := e.writeFile("bad.json", `{"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}`)
	code, out, _ := e.run("run-handler", "demo", "--workflow", bad)
	if code != 1 || !strings.Contains(out, `"error_type": "comfy_validation"`) {
		t.Fatalf("failing workflow: exit %d\n%s", code, out)
	}
	// A bad input or an unknown version is the caller's to fix: exit 2,
	// with the error in the JSON all the same.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run-handler", "demo", "--workflow", e.writeFile("ui.json", `{"nodes": [], "links": []}`)}, `"error_type": "input"`},
		{[]string{"run-handler", "nope", "--workflow", wf}, `"error_type": "`},
		// GCS asked for where there is none: refused before the workflow
		// runs, as an input the caller has to change.
		{[]string{"run-handler", "demo", "--workflow", wf, "--output", "gcs", "--gcs-bucket", "b", "--gcs-prefix", "p"}, `"field": "output_mode"`},
	} {
		code, out, _ := e.run(tc.args...)
		if code != exitUsage || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d (want %d)\n%s", tc.args, code, exitUsage, out)
		}
	}
}

func TestRunUICommand(t *testing.T) {
	e := newTestEnv(t)
	versionFixture(t, e)
	_, fake := binaries(t)
	t.Setenv("FAKE_COMFY_BIN", fake)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"run-ui", "demo", "--host", "127.0.0.1", "--port", "0", "--data-dir", filepath.Join(e.dir, "ui"), "--extra-args", "--", "--preview-method", "auto"},
			strings.NewReader(""), &stdout, &syncBuf{}, e.getenv)
	}()
	url := ""
	re := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	for deadline := time.Now().Add(90 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		url = re.FindString(stdout.String())
	}
	if url == "" {
		t.Fatalf("ComfyUI did not come up: %s", stdout.String())
	}
	resp, err := http.Get(url + "/system_stats")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("system_stats: %v", err)
	}
	resp.Body.Close()
	cancel() // Ctrl+C
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run-ui exited %d after Ctrl+C", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run-ui did not stop")
	}
	if _, err := http.Get(url + "/system_stats"); err == nil {
		t.Error("ComfyUI still answers after run-ui stopped")
	}
}
