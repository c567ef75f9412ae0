package main

import (
	"os"
	"testing"

	"github.com/runpod-comfy/worker/internal/gobuild"
)

// TestMain removes the programs the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}
