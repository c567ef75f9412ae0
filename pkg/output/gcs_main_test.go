package output

import (
	"testing"

	"github.com/runpod-comfy/worker/internal/leaktest"
)

// TestMain fails the run when goroutines outlive the tests: every upload
// must stop its writers, retries and connections.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.Options{}) }
