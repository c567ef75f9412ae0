//go:build linux

package netvol_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/leaktest"
	"github.com/runpod-comfy/worker/internal/netvol"
)

// lockEnv makes the test binary a small locking program that tests run
// inside hosts: "hold:PATH" takes an exclusive flock, says "locked" and
// keeps it until killed; "try:PATH" exits 0 when the lock is free and
// exitBusy when someone holds it.
const lockEnv = "NETVOL_TEST_LOCK"

const exitBusy = 3

// TestMain: the binary is also the host helper and the locking program;
// goroutines must not outlive the tests (a volume stops its server).
func TestMain(m *testing.M) {
	netvol.RunHostIfRequested()
	if v, ok := os.LookupEnv(lockEnv); ok {
		os.Exit(lockMain(v))
	}
	leaktest.Main(m, leaktest.Options{})
}

func lockMain(spec string) int {
	mode, path, _ := strings.Cut(spec, ":")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch mode {
	case "hold":
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("locked")
		time.Sleep(time.Hour)
		return 0
	case "try":
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return exitBusy
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown lock mode", mode)
	return 1
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
