package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestQuickStartFromCleanClone runs the quick start's first commands and
// README's offline one, as written, in a fresh clone of this repository:
// what a newcomer types first must work (no network needed: the example
// pins every commit).
func TestQuickStartFromCleanClone(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("not in a git checkout: %v", err)
	}
	tmp := t.TempDir()
	clone := filepath.Join(tmp, "clone")
	if out, err := exec.Command("git", "clone", "-q", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	doc, err := os.ReadFile(filepath.Join(clone, "docs", "quickstart.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)## 1\\. On your machine.*?```sh\n(.*?)```").FindSubmatch(doc)
	if block == nil {
		t.Fatal("quickstart.md: no sh block under \"## 1. On your machine\"")
	}
	lines := strings.Split(strings.TrimSpace(string(block[1])), "\n")
	lines = append(lines, "go run ./worker validate sd15-basic") // README's offline check
	env := []string{"HOME=" + filepath.Join(tmp, "home"), "PATH=" + os.Getenv("PATH"), "GOPROXY=off", "GOFLAGS=-mod=mod"}
	for _, k := range []string{"GOMODCACHE", "GOCACHE"} {
		v, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+strings.TrimSpace(string(v)))
	}
	for _, line := range lines {
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir, cmd.Env = clone, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("`%s`: %v\n%s", line, err, out)
		}
		if strings.Contains(line, "validate") && !strings.Contains(string(out), "[OK] sd15-basic") {
			t.Errorf("`%s` printed no [OK] line:\n%s", line, out)
		}
	}
	if st, err := os.Stat(filepath.Join(clone, "worker", "worker")); err == nil && !st.IsDir() {
		t.Error("the quick start's build wrote worker/worker into the package directory")
	}
	status, _ := exec.Command("git", "-C", clone, "status", "--porcelain").Output()
	if len(strings.TrimSpace(string(status))) > 0 {
		t.Errorf("the quick start left untracked or changed files in the clone:\n%s", status)
	}
}
