package comfy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
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
	code := m.Run()
	if code == 0 {
		if leaks := leakedGoroutines(5 * time.Second); leaks != "" {
			fmt.Fprintf(os.Stderr, "goroutines of pkg/comfy still running after the tests:\n%s\n", leaks)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// leakedGoroutines waits up to d for every goroutine running code of this
// package (or its fake) to end, and describes those that do not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaks []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "worker/pkg/comfy.") || strings.Contains(g, "worker/pkg/comfy/comfytest.") {
				if !strings.Contains(g, "comfy.TestMain") && !strings.Contains(g, "comfy.leakedGoroutines") {
					leaks = append(leaks, g)
				}
			}
		}
		if len(leaks) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
