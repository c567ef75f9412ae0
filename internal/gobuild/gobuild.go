// Package gobuild builds this module's programs for tests that run them as
// real processes (the worker binary, the fake ComfyUI): each program once
// per test binary, into one temporary directory that Cleanup removes.
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// The module's programs that tests run.
const (
	Worker    = "github.com/runpod-comfy/worker/worker"
	FakeComfy = "github.com/runpod-comfy/worker/pkg/comfy/comfytest/fakecomfy"
)

type build struct {
	once sync.Once
	path string
	err  error
}

var (
	mu     sync.Mutex
	dir    string
	builds = map[string]*build{}
)

// Binary returns the path of the program pkg (an import path) built with
// flags (such as -race); concurrent callers share one build.
func Binary(pkg string, flags ...string) (string, error) {
	key := strings.Join(append([]string{pkg}, flags...), " ")
	mu.Lock()
	if dir == "" {
		d, err := os.MkdirTemp("", "gobuild-")
		if err != nil {
			mu.Unlock()
			return "", err
		}
		dir = d
	}
	b := builds[key]
	if b == nil {
		b = &build{path: filepath.Join(dir, fmt.Sprintf("%s-%d", path.Base(pkg), len(builds)))}
		builds[key] = b
	}
	mu.Unlock()
	b.once.Do(func() {
		args := append(append([]string{"build", "-o", b.path}, flags...), pkg)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	return b.path, b.err
}

// MustBinary is Binary for a test: a failed build fails it.
func MustBinary(tb interface {
	Helper()
	Fatal(...any)
}, pkg string, flags ...string) string {
	tb.Helper()
	p, err := Binary(pkg, flags...)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Cleanup removes every program built; a TestMain calls it after the
// tests.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
	dir, builds = "", map[string]*build{}
}
