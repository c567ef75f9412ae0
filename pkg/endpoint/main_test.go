package endpoint

import (
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/leaktest"
)

// TestMain fails the run when goroutines of this package, its fake or the
// SDK outlive the tests.
func TestMain(m *testing.M) {
	leaktest.Main(m, leaktest.Options{Grace: 5 * time.Second,
		Only: []string{"worker/pkg/endpoint.", "endpointtest.", "go-sdk/pkg/sdk/"}, Ignore: []string{"endpoint.TestMain"}})
}
