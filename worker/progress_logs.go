package main

import (
	"io"
	"time"

	"github.com/runpod-comfy/worker/pkg/models/progressui"
)

// showProgress starts the progress display of a command: bars on a
// terminal, with the log lines routed through them so they print above
// the bars instead of under the next frame; log lines elsewhere. stop ends
// the display and gives the logger its terminal back.
func (a *app) showProgress() (ui progressui.Reporter, stop func()) {
	ui = progressui.Auto(stderrFile(a.stderr), a.log, 5*time.Second)
	restore := func() {}
	if w, ok := ui.(io.Writer); ok && a.logSink != nil {
		restore = a.logSink.Divert(w)
	}
	return ui, func() {
		ui.Close()
		restore()
	}
}
