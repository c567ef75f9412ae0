package gittest

import (
	"testing"

	"github.com/runpod-comfy/worker/internal/leaktest"
)

// TestMain fails the run when goroutines outlive the tests: a Server must stop its handlers and connections when its test ends.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.Options{}) }
