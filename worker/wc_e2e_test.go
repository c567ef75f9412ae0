package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// TestWorkerComfyUIClientRoundTrip: a worker-comfyui client changes only
// the endpoint it calls. Its requests (no version_id, no response_format)
// go through the local API
// (--rp_serve_api) of the real binary, configured the RunPod way
// (RESPONSE_FORMAT, COMFY_VERSION_NAME, BUCKET_* for S3), and come back
// in worker-comfyui's shapes: images as presigned S3 URLs in the month's
// bucket, and its failure message. No secret reaches the logs.
func TestWorkerComfyUIClientRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("realizes a version and runs the binary")
	}
	s3 := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true)).Server())
	t.Cleanup(s3.Close)
	const secret, orgKey = "bucket-secret-9d2e71", "comfy-org-key-55ab"

	e := newTestEnv(t)
	versionFixture(t, e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	bin, fake := binaries(t)
	cmd := exec.Command(bin, "--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", fmt.Sprint(port))
	cmd.Dir = e.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "FAKE_COMFY_BIN=" + fake, "COMFY_SCRATCH_DIR=" + filepath.Join(e.dir, "scratch"),
		"COMFY_LOG_LEVEL=debug",
		"RESPONSE_FORMAT=worker-comfyui", "COMFY_VERSION_NAME=demo", "COMFY_ORG_API_KEY=" + orgKey,
		"BUCKET_ENDPOINT_URL=" + s3.URL, "BUCKET_ACCESS_KEY_ID=AKIDWORKER", "BUCKET_SECRET_ACCESS_KEY=" + secret}
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("worker stderr:\n%s", tail(stderr.String(), 60))
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 3 * time.Minute}
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := client.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("local API not up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	runsync := func(body []byte) map[string]any {
		t.Helper()
		resp, err := client.Post(base+"/runsync", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	img2img, err := os.ReadFile("../pkg/job/testdata/worker-comfyui/img2img.json")
	if err != nil {
		t.Fatal(err)
	}
	month := time.Now().UTC().Format("01-06")
	// Twice: the second job runs on the warm ComfyUI, with the same files.
	for _, name := range []string{"first job", "second job"} {
		body := img2img
		res := runsync(body)
		out, _ := res["output"].(map[string]any)
		images, _ := out["images"].([]any)
		if res["status"] != "COMPLETED" || len(images) != 1 || len(out) != 1 {
			t.Fatalf("%s: %v", name, res)
		}
		img := images[0].(map[string]any)
		url, _ := img["data"].(string)
		if img["type"] != "s3_url" || !strings.HasPrefix(img["filename"].(string), "inverted_") ||
			!strings.HasPrefix(url, s3.URL+"/"+month+"/comfy/outputs/") || !strings.Contains(url, "X-Amz-Expires=604800") {
			t.Fatalf("%s: image %v", name, img)
		}
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		png, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Errorf("%s: GET the URL: %d, %q", name, resp.StatusCode, png[:min(len(png), 8)])
		}
	}
	res := runsync([]byte(`{"input": {"images": []}}`))
	if _, has := res["output"]; res["status"] != "FAILED" || res["error"] != "Missing 'workflow' parameter" || has {
		t.Errorf("failure: %v", res)
	}
	for _, s := range []string{secret, orgKey} {
		if strings.Contains(stderr.String(), s) {
			t.Errorf("a secret is in the worker's log")
		}
	}
}
