package multihost

import (
	"os"
	"testing"

	"github.com/runpod-comfy/worker/internal/netvol"
)

func TestMain(m *testing.M) {
	netvol.RunHostIfRequested()
	os.Exit(m.Run())
}
