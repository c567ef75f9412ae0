package urlfetch

import (
	"testing"

	"github.com/runpod-comfy/worker/internal/leaktest"
)

// TestMain fails the run when goroutines outlive the tests: every fetch must close its connections and stop its timers.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.Options{}) }
