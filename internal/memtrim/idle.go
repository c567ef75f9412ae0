package memtrim

import (
	"sync"
	"time"
)

// Idle pages the binary's code out once the process has been idle for a
// while after its last piece of work: doing it right after a job would
// make the result's delivery fault the pages straight back in.
type Idle struct {
	// After is how long the process must stay idle (default 2s).
	After time.Duration

	mu    sync.Mutex
	busy  int
	timer *time.Timer
}

// Busy marks the start of work.
func (t *Idle) Busy() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy++
	if t.timer != nil {
		t.timer.Stop()
	}
}

// Done marks the end of work started with Busy.
func (t *Idle) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy--
	if t.busy > 0 {
		return
	}
	after := t.After
	if after <= 0 {
		after = 2 * time.Second
	}
	t.timer = time.AfterFunc(after, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.busy == 0 {
			ExecutablePages()
		}
	})
}
