package comfy

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/gobuild"
	"github.com/runpod-comfy/worker/internal/leaktest"
)

// fakeComfyBin is the fakecomfy program, built once per test binary.
var fakeComfyBin string

func TestMain(m *testing.M) {
	var err error
	if fakeComfyBin, err = gobuild.Binary(gobuild.FakeComfy); err != nil {
		fmt.Fprintln(os.Stderr, err)
		gobuild.Cleanup()
		os.Exit(1)
	}
	code := leaktest.Check(m.Run(), leaktest.Options{Grace: 5 * time.Second,
		Only: []string{"worker/pkg/comfy.", "worker/pkg/comfy/comfytest."}, Ignore: []string{"comfy.TestMain"}})
	gobuild.Cleanup()
	os.Exit(code)
}
