package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

// TestServerlessGCSAndURLInputs: the whole job path with an input image
// fetched by URL and the output delivered to GCS (fake-gcs-server on
// 127.0.0.1, reached through STORAGE_EMULATOR_HOST as the official client
// supports), through the real binary.
func TestServerlessGCSAndURLInputs(t *testing.T) {
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	if err != nil {
		t.Fatal(err)
	}
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "outputs"})
	gcsHTTP := httptest.NewServer(gcs.HTTPHandler())
	t.Cleanup(gcsHTTP.Close)

	// An input image served on loopback.
	imgSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "testdata/input.png")
	}))
	t.Cleanup(imgSrv.Close)

	e := newTestEnv(t)
	versionFixture(t, e)
	rp := runpodtest.New(runpodtest.Options{})
	t.Cleanup(rp.Close)
	startWorker(t, e, rp, map[string]string{
		"STORAGE_EMULATOR_HOST": gcsHTTP.URL, "GCS_BUCKET": "outputs", "GCS_PREFIX": "runs",
		"COMFY_URL_ALLOW_HTTP": "1", "COMFY_URL_ALLOW_LOOPBACK": "1",
	})
	wf := `{"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
	  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "gcs"}}}`
	rp.AddJobs(runpodtest.Job{ID: "g1", Input: json.RawMessage(`{"version_id": "demo", "output_mode": "gcs", "workflow": ` + wf +
		`, "input_images": {"in.png": "` + imgSrv.URL + `/in.png"}}`)})
	res := rp.MustResult(t, "g1")
	var out struct {
		OutputMode string `json:"output_mode"`
		Outputs    []struct {
			URL     string `json:"url"`
			GCSPath string `json:"gcs_path"`
			Base64  string `json:"base64"`
			Size    int64  `json:"size"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil || res.Error != nil || len(out.Outputs) != 1 {
		t.Fatalf("g1: %s %s", res.ErrorString(), res.Output)
	}
	o := out.Outputs[0]
	if out.OutputMode != "gcs" || o.Base64 != "" || !strings.HasPrefix(o.GCSPath, "gs://outputs/runs/g1/") || !strings.Contains(o.URL, "/outputs/runs/g1/") {
		t.Fatalf("gcs output entry: %s", res.Output)
	}
	obj, err := gcs.GetObject("outputs", strings.TrimPrefix(o.GCSPath, "gs://outputs/"))
	if err != nil || int64(len(obj.Content)) != o.Size || !bytes.HasPrefix(obj.Content, []byte("\x89PNG")) || obj.ContentType != "image/png" {
		t.Fatalf("object in the bucket: %v (%d bytes, %s)", err, len(obj.Content), obj.ContentType)
	}

	// The same input URL is refused when loopback is not allowed: run a
	// second worker without the allowance.
	e2 := newTestEnv(t)
	versionFixture(t, e2)
	rp2 := runpodtest.New(runpodtest.Options{})
	t.Cleanup(rp2.Close)
	startWorker(t, e2, rp2, map[string]string{"COMFY_URL_ALLOW_HTTP": "1"})
	rp2.AddJobs(runpodtest.Job{ID: "r1", Input: json.RawMessage(`{"version_id": "demo", "workflow": ` + wf +
		`, "input_images": {"in.png": "` + imgSrv.URL + `/in.png"}}`)})
	p := rp2.MustResult(t, "r1")
	if !strings.Contains(p.ErrorString(), "COMFY_URL_ALLOW_LOOPBACK") {
		t.Fatalf("loopback input not refused clearly: %s", p.ErrorString())
	}
}
