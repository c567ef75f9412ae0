package multihost

import (
	"os"
	"testing"

	"github.com/runpod-comfy/worker/internal/gobuild"
	"github.com/runpod-comfy/worker/internal/netvol"
)

func TestMain(m *testing.M) {
	netvol.RunHostIfRequested()
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}
