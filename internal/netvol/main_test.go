//go:build linux

package netvol_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/internal/leaktest"
	"github.com/runpod-comfy/worker/internal/netvol"
)

// TestMain: the binary is also the host helper; goroutines must not
// outlive the tests (a volume stops its server).
func TestMain(m *testing.M) {
	netvol.RunHostIfRequested()
	leaktest.Main(m, leaktest.Options{})
}

// mountedAnywhere lists the mount namespaces (by a process in them) in
// which something is mounted on dir: the proof that nothing was left.
func mountedAnywhere(t *testing.T, dir string) []string {
	t.Helper()
	seen := map[string]bool{}
	var found []string
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		ns, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt")
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		f, err := os.Open("/proc/" + e.Name() + "/mounts")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) > 2 && fields[1] == dir {
				found = append(found, fmt.Sprintf("pid %s (%s): %s", e.Name(), ns, sc.Text()))
			}
		}
		f.Close()
	}
	return found
}
