package output

import (
	"os"
	"testing"

	"github.com/runpod-comfy/worker/internal/leaktest"
)

// TestMain fails the run when goroutines outlive the tests: every upload
// must stop its writers, retries and connections. The memory tests' child
// processes only measure; their exit must not depend on how fast the storage
// client's idle connections wind down.
func TestMain(m *testing.M) {
	if os.Getenv(streamChildEnv) != "" || os.Getenv(s3StreamChildEnv) != "" {
		os.Exit(m.Run())
	}
	leaktest.Main(m, leaktest.Options{})
}
