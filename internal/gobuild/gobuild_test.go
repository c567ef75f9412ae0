package gobuild

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// TestBinaryBuildsOnceAndRuns: concurrent callers get one build of the
// program, it runs, and Cleanup removes it.
func TestBinaryBuildsOnceAndRuns(t *testing.T) {
	var wg sync.WaitGroup
	paths := make([]string, 4)
	for i := range paths {
		wg.Go(func() { paths[i] = MustBinary(t, Worker) })
	}
	wg.Wait()
	for _, p := range paths[1:] {
		if p != paths[0] {
			t.Fatalf("two builds: %s and %s", paths[0], p)
		}
	}
	out, err := exec.Command(paths[0], "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "worker") {
		t.Fatalf("built worker --version: %v %q", err, out)
	}
	if _, err := Binary("github.com/runpod-comfy/worker/no/such/pkg"); err == nil {
		t.Error("building a missing package succeeded")
	}
	Cleanup()
	if _, err := os.Stat(paths[0]); !os.IsNotExist(err) {
		t.Errorf("after Cleanup the program is still there: %v", err)
	}
}
