package progressui

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// Bars draws progress on a terminal the way `docker pull` does: one line
// per item still running (a bar for bytes, a spinner with the current phase
// for anything else, such as pip), and one summary line for everything that
// finished, which is what stays on screen at the end. Log lines written
// through Write appear above the display instead of being overwritten by
// the next frame. Every line is cut to the terminal's width, so a long
// name or pip message never wraps and throws the redraw off by a line.
type Bars struct {
	out io.Writer
	p   *mpb.Progress
	now func() time.Time

	mu      sync.Mutex // guards everything below, and serialises Write with Close
	items   map[string]*item
	closed  bool
	sum     *summary
	sumBar  *mpb.Bar
	pending []byte // a log line not yet ended by '\n'
}

// NewBars draws on w, a terminal. Close it to stop the render goroutine.
func NewBars(w io.Writer) *Bars {
	return &Bars{
		out:   w,
		p:     mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh()),
		now:   time.Now,
		items: map[string]*item{},
		sum:   &summary{},
	}
}

// item is one running piece of work; mpb's render goroutine reads it.
type item struct {
	task, name string
	bytes      bool
	start      time.Time
	now        func() time.Time

	mu    sync.Mutex
	bar   *mpb.Bar
	r     *rate
	done  int64
	total int64
	note  string
}

// Report implements progress.Func.
func (b *Bars) Report(e progress.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	key := e.Task + "\x00" + e.Item
	it := b.items[key]
	now := b.now()
	if it == nil {
		if e.Finished {
			// Nothing was shown for it (a cache hit): only the summary
			// counts it.
			b.finish(nil, e)
			return
		}
		it = &item{task: e.Task, name: e.Item, bytes: e.Unit == "bytes", start: now, now: b.now, r: newRate(now, e.Done)}
		it.bar = b.p.New(0, mpb.NopStyle(), mpb.BarFillerTrim(), mpb.PrependDecorators(decor.Any(it.line)))
		b.items[key] = it
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
	if e.Finished {
		delete(b.items, key)
		b.finish(it, e)
	}
}

// finish takes a finished item off the screen and into the summary. A
// failure is also printed above the display, so it stays visible; an
// interruption (Ctrl+C) only counts: the command reports it.
func (b *Bars) finish(it *item, e progress.Event) {
	if it != nil {
		it.bar.Abort(true)
	}
	elapsed := e.Elapsed
	if elapsed == 0 && it != nil {
		elapsed = b.now().Sub(it.start)
	}
	b.sum.add(e, elapsed)
	if e.Message == "failed" {
		fmt.Fprintf(b.p, "%s %s failed\n", e.Task, e.Item)
	}
	if b.sumBar == nil {
		// Created on the first finish, so no empty line is ever drawn;
		// the lowest priority keeps it under the running items.
		b.sumBar = b.p.New(0, mpb.NopStyle(), mpb.BarFillerTrim(), mpb.BarPriority(math.MaxInt), mpb.PrependDecorators(decor.Any(b.sum.line)))
	}
}

// Write prints p above the display (log lines). After Close it writes to
// the terminal directly. Partial lines are held until their newline, as
// the display can only put whole lines above itself.
func (b *Bars) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.out.Write(p)
	}
	b.pending = append(b.pending, p...)
	i := lastNewline(b.pending)
	if i < 0 {
		return len(p), nil
	}
	line := b.pending[:i+1]
	b.pending = append([]byte(nil), b.pending[i+1:]...)
	if _, err := b.p.Write(line); err != nil {
		return 0, err
	}
	return len(p), nil
}

func lastNewline(p []byte) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '\n' {
			return i
		}
	}
	return -1
}

// Close drops the lines of unfinished items (an interrupted run leaves no
// half-drawn bars), completes the summary line, which stays, and waits for
// the last frame. Logs written meanwhile wait for it, then go straight to
// the terminal.
func (b *Bars) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for _, it := range b.items {
		it.bar.Abort(true)
		b.sum.interrupt(it.task)
	}
	b.items = nil
	if len(b.pending) > 0 {
		b.p.Write(append(b.pending, '\n'))
		b.pending = nil
	}
	if b.sumBar != nil {
		// The last word is printed in full, like a log line: the live
		// summary is cut to the terminal's width, this one may wrap.
		b.sumBar.Abort(true)
		fmt.Fprintln(b.p, b.sum.text())
	}
	b.p.Wait()
}

const (
	spinner  = `|/-\`
	barWidth = 24
)

// line renders the item in at most the terminal's width (less one column:
// writing the last one makes some terminals wrap early).
func (it *item) line(st decor.Statistics) string {
	it.mu.Lock()
	defer it.mu.Unlock()
	width := st.AvailableWidth - 1
	if it.bytes {
		return it.byteLine(width)
	}
	frame := spinner[int(it.now().Sub(it.start)/(200*time.Millisecond))%len(spinner)]
	right := it.note
	if it.done > 0 {
		right = fmt.Sprintf("%s (%d)", right, it.done)
	}
	return fit(fmt.Sprintf("%c %s %s", frame, it.task, it.name), "  "+right, width)
}

func (it *item) byteLine(width int) string {
	stats := units.Bytes(it.done)
	graph := ""
	if it.total > 0 {
		stats += " / " + units.Bytes(it.total)
		filled := int(float64(barWidth) * float64(min(it.done, it.total)) / float64(it.total))
		graph = "[" + repeat("=", filled) + repeat(" ", barWidth-filled) + "] "
	}
	if it.r.bps > 0 {
		stats += "  " + units.Bytes(int64(it.r.bps)) + "/s"
		if d := eta(it.done, it.total, it.r.bps); d >= 0 {
			stats += "  ETA " + d.String()
		}
	}
	if it.note != "" {
		stats += "  " + it.note
	}
	if width < len(it.name)+len(graph)+len(stats)+2 {
		graph = "" // the numbers matter more than the picture
	}
	return fit(it.name, "  "+graph+stats, width)
}

func repeat(c string, n int) string { return strings.Repeat(c, max(n, 0)) }

// fit joins left and right into at most width columns: the right part
// (numbers, phase) keeps its start, the left part (a name) is shortened in
// the middle, and whatever still does not fit is cut.
func fit(left, right string, width int) string {
	if width <= 0 {
		return ""
	}
	l, r := []rune(left), []rune(right)
	if len(l)+len(r) <= width {
		return left + right
	}
	room := width - len(r)
	if room < 12 {
		room = min(len(l), max(width/2, 1))
	}
	if len(l) > room {
		if room > 3 {
			half := (room - 1) / 2
			l = append(append(append([]rune{}, l[:half]...), '~'), l[len(l)-(room-1-half):]...)
		} else {
			l = l[:room]
		}
	}
	out := append(l, r...)
	if len(out) > width {
		out = out[:width]
	}
	return string(out)
}
