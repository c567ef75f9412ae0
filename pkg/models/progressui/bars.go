package progressui

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// Bars draws one live bar per item on a terminal.
type Bars struct {
	p   *mpb.Progress
	now func() time.Time

	mu     sync.Mutex
	bars   map[string]*bar
	closed bool
}

type bar struct {
	b     *mpb.Bar
	mu    sync.Mutex // guards the fields below, read by mpb's render goroutine
	r     *rate
	done  int64
	total int64
	note  string
}

// NewBars draws on w. Close it to stop the render goroutine.
func NewBars(w io.Writer) *Bars {
	return &Bars{
		p:    mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithAutoRefresh()),
		now:  time.Now,
		bars: map[string]*bar{},
	}
}

// Report implements progress.Func.
func (b *Bars) Report(e progress.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	key := e.Task + "\x00" + e.Item
	it := b.bars[key]
	now := b.now()
	if it == nil {
		if e.Finished && e.Message == "cached" {
			// Nothing to watch: one line instead of a bar.
			fmt.Fprintf(b.p, "%s: cached\n", e.Item)
			return
		}
		it = &bar{r: newRate(now, e.Done)}
		it.b = b.p.New(max(e.Total, 0), mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name(e.Item, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(it.stats)),
		)
		b.bars[key] = it
	}
	it.mu.Lock()
	if now.Sub(it.r.last) >= time.Second {
		it.r.update(now, e.Done)
	}
	it.done, it.total = e.Done, e.Total
	if e.Message != "" {
		it.note = e.Message
	}
	it.mu.Unlock()
	if e.Total > 0 {
		it.b.SetTotal(e.Total, false)
	}
	if e.Finished {
		delete(b.bars, key)
		if e.Message == "failed" {
			it.b.Abort(false)
			return
		}
		it.b.SetCurrent(e.Done)
		it.b.SetTotal(-1, true)
		return
	}
	it.b.SetCurrent(e.Done)
}

func (it *bar) stats(decor.Statistics) string {
	it.mu.Lock()
	defer it.mu.Unlock()
	s := units.Bytes(it.done)
	if it.total > 0 {
		s += " / " + units.Bytes(it.total)
	}
	if it.r.bps > 0 {
		s += "  " + units.Bytes(int64(it.r.bps)) + "/s"
		if d := eta(it.done, it.total, it.r.bps); d >= 0 {
			s += "  ETA " + d.String()
		}
	}
	if it.note != "" {
		s += "  " + it.note
	}
	return s
}

// Close aborts the bars of unfinished items and waits for the last frame.
func (b *Bars) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	for _, it := range b.bars {
		it.b.Abort(false)
	}
	b.bars = nil
	b.mu.Unlock()
	b.p.Wait()
}
