package gitsrc

import (
	"testing"

	"github.com/runpod-comfy/worker/internal/leaktest"
)

// TestMain fails the run when goroutines outlive the tests: every listing and fetch must stop its requests, subprocesses and connections.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.Options{}) }
