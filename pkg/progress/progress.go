// Package progress carries progress reports from long-running work (downloads,
// git fetches, pip installs, ComfyUI execution) to whoever displays them: a TTY
// bar, a periodic log line, or a RunPod progress update. Producers never know
// which; they call a Func, which may be nil.
package progress

import "time"

// Event is one progress report. Done and Total count Units; Total is 0 when
// the size of the work is not known yet.
type Event struct {
	// Task names the kind of work: "download", "git", "pip", "comfy", ...
	Task string
	// Item identifies the piece of work within the task: a model target, a
	// repository, a ComfyUI node id.
	Item  string
	Done  int64
	Total int64
	// Unit is what Done and Total count: "bytes", "steps", "nodes".
	Unit string
	// Finished is set on the last event of an item, successful or not.
	Finished bool
	// Message is optional free text ("resuming at 1.2 GB", "cached"). On
	// a Finished event it is the outcome: "cached", "failed" and
	// "interrupted" (the work was cancelled) mean what they say.
	Message string
	// Elapsed is, on a Finished event, how long the item took, when the
	// producer knows; a display that saw no earlier event of the item
	// could not tell.
	Elapsed time.Duration
}

// Func consumes events. Implementations must be safe for concurrent use:
// parallel downloads report from several goroutines.
type Func func(Event)

// Report calls f when it is not nil, so producers need no nil checks.
func (f Func) Report(e Event) {
	if f != nil {
		f(e)
	}
}

// Tee returns a Func that forwards every event to each non-nil f in order.
func Tee(fs ...Func) Func {
	return func(e Event) {
		for _, f := range fs {
			f.Report(e)
		}
	}
}
