package endpoint

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/runpod-comfy/worker/pkg/endpoint/endpointtest"
)

func TestInvoke(t *testing.T) {
	files, _ := fileServer(t, map[string]string{"/o/2.png": "URLDATA"})
	out := fmt.Sprintf(`{"version_id":"v","outputs":[{"filename":"1.png","base64":%q,"sha256":%q},{"filename":"2.png","url":"%s/o/2.png","sha256":%q}]}`,
		b64("B64DATA"), sum("B64DATA"), files.URL, sum("URLDATA"))
	doc := `{"input": {"version_id": "v"}, "webhook": "https://example.invalid/hook", "policy": {"executionTimeout": 120000}}`
	for _, sync := range []bool{false, true} {
		t.Run(map[bool]string{false: "async", true: "sync"}[sync], func(t *testing.T) {
			srv, c := newPair(t, endpointtest.Behavior{Running: 1, Output: raw(out)})
			dir := filepath.Join(t.TempDir(), "out")
			inv, err := c.Invoke(context.Background(), []byte(doc), CallOptions{Sync: sync}, dir)
			if err != nil {
				t.Fatal(err)
			}
			if inv.Result.Status != StatusCompleted || len(inv.Files) != 2 {
				t.Fatalf("invocation = %+v", inv)
			}
			if got := dirFiles(t, dir); !mapsEqual(got, map[string]string{"1.png": "B64DATA", "2.png": "URLDATA"}) {
				t.Errorf("files = %q", got)
			}
			j := srv.Jobs()[0]
			if j.Webhook != "https://example.invalid/hook" {
				t.Errorf("webhook = %q", j.Webhook)
			}
			jsonEqual(t, j.Policy, []byte(`{"executionTimeout":120000}`))
		})
	}
}

func TestInvokeFailedJobWritesNothing(t *testing.T) {
	_, c := newPair(t, endpointtest.Behavior{Error: "realize failed: no space left", Output: raw(`{"error_type":"realize","outputs":[{"filename":"x","base64":"QQ=="}]}`)})
	dir := filepath.Join(t.TempDir(), "out")
	inv, err := c.Invoke(context.Background(), []byte(`{"input":{"a":1}}`), CallOptions{}, dir)
	var je *JobError
	if !errors.As(err, &je) || je.Type != "realize" || inv == nil || inv.Result == nil {
		t.Fatalf("inv = %+v, err = %v", inv, err)
	}
	if len(inv.Files) != 0 {
		t.Errorf("files written for a failed job: %q", inv.Files)
	}
}

func TestInvokeBadDocument(t *testing.T) {
	srv, c := newPair(t, endpointtest.Behavior{})
	_, err := c.Invoke(context.Background(), []byte(`{"input": [1]}`), CallOptions{}, "")
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want InputError", err)
	}
	if len(srv.Requests()) != 0 {
		t.Error("requests were sent")
	}
}
