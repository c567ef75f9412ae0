package comfy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/leaktest"
)

// fakeComfyBin is the fakecomfy program, built once per test binary.
var fakeComfyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fakecomfy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeComfyBin = filepath.Join(dir, "fakecomfy")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	build := exec.Command(gobin, "build", "-o", fakeComfyBin, "./comfytest/fakecomfy")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build fakecomfy: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := leaktest.Check(m.Run(), leaktest.Options{Grace: 5 * time.Second,
		Only: []string{"worker/pkg/comfy.", "worker/pkg/comfy/comfytest."}, Ignore: []string{"comfy.TestMain"}})
	os.RemoveAll(dir)
	os.Exit(code)
}
