// Command worker manages pinned ComfyUI versions, realizes them onto disk
// and serves them as a RunPod serverless worker. This package only wires:
// every behaviour lives in pkg/.
package main

import (
	"context"
	"os"
	"syscall"

	"github.com/runpod-comfy/worker/internal/signals"
)

func main() {
	ctx, stop := signals.Context(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
