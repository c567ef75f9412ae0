// Package progressui shows progress events to a person: live bars on a
// terminal (mpb), or throttled log lines with bytes, rate and ETA when the
// output is a file or a log collector. Both are safe for the concurrent
// reports of parallel downloads.
package progressui

import (
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// Reporter consumes events until Close.
type Reporter interface {
	Report(progress.Event)
	// Close ends the display; later events are ignored.
	Close()
}

// Auto returns bars when out is a terminal and log lines every interval
// otherwise (RunPod logs, CI).
func Auto(out *os.File, log zerolog.Logger, interval time.Duration) Reporter {
	if out != nil && (isatty.IsTerminal(out.Fd()) || isatty.IsCygwinTerminal(out.Fd())) {
		return NewBars(out)
	}
	return NewLogReporter(log, interval)
}

// rate tracks one item's throughput between reports.
type rate struct {
	start     time.Time
	startDone int64
	last      time.Time
	lastDone  int64
	bps       float64 // smoothed bytes per second
}

func newRate(now time.Time, done int64) *rate {
	return &rate{start: now, startDone: done, last: now, lastDone: done}
}

// update folds the progress since the last update into a moving average,
// so one slow second does not swing the ETA wildly.
func (r *rate) update(now time.Time, done int64) {
	if done < r.lastDone {
		// The download restarted from 0: measure afresh.
		*r = *newRate(now, done)
		return
	}
	dt := now.Sub(r.last).Seconds()
	if dt <= 0 {
		return
	}
	cur := float64(done-r.lastDone) / dt
	if r.bps == 0 {
		r.bps = cur
	} else {
		r.bps = 0.7*r.bps + 0.3*cur
	}
	r.last, r.lastDone = now, done
}

// eta is -1 when unknown.
func eta(done, total int64, bps float64) time.Duration {
	if total <= 0 || bps <= 0 || done > total {
		return -1
	}
	return time.Duration(float64(total-done) / bps * float64(time.Second)).Round(time.Second)
}

// LogReporter writes one log line per item at most every interval, plus a
// line when an item starts and when it finishes. It runs no goroutine: a
// line is written when an event arrives, so a stalled download is silent
// until the downloader's idle timeout reports it.
type LogReporter struct {
	log      zerolog.Logger
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	items  map[string]*rate
	closed bool
}

// NewLogReporter reports to log at most every interval per item (default
// 10s).
func NewLogReporter(log zerolog.Logger, interval time.Duration) *LogReporter {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &LogReporter{log: log, interval: interval, now: time.Now, items: map[string]*rate{}}
}

// Report implements progress.Func.
func (l *LogReporter) Report(e progress.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	now := l.now()
	key := e.Task + "\x00" + e.Item
	r := l.items[key]
	fresh := r == nil
	if r == nil {
		r = newRate(now, e.Done)
		l.items[key] = r
		if !e.Finished {
			ev := l.log.Info().Str("task", e.Task).Str("item", e.Item)
			if e.Total > 0 {
				ev = ev.Int64("total_bytes", e.Total).Str("total", units.Bytes(e.Total))
			}
			if e.Message != "" {
				ev = ev.Str("note", e.Message)
			}
			ev.Msg(e.Task + " started")
			return
		}
	}
	if e.Finished {
		delete(l.items, key)
		l.finished(e, r, fresh, now)
		return
	}
	if e.Message != "" && now.Sub(r.last) < l.interval {
		l.log.Info().Str("task", e.Task).Str("item", e.Item).Str("note", e.Message).Msg(e.Task)
		return
	}
	if now.Sub(r.last) < l.interval {
		return
	}
	r.update(now, e.Done)
	ev := l.log.Info().Str("task", e.Task).Str("item", e.Item)
	if e.Unit == "bytes" {
		ev = ev.Int64("bytes", e.Done).Str("done", units.Bytes(e.Done)).Str("rate", units.Bytes(int64(r.bps))+"/s")
	} else {
		ev = ev.Int64("done", e.Done)
	}
	if e.Total > 0 {
		ev = ev.Int64("total_bytes", e.Total).Str("percent", fmt.Sprintf("%.1f%%", 100*float64(e.Done)/float64(e.Total)))
		if d := eta(e.Done, e.Total, r.bps); d >= 0 {
			ev = ev.Str("eta", d.String())
		}
	}
	if e.Message != "" {
		ev = ev.Str("note", e.Message)
	}
	ev.Msg(e.Task + " progress")
}

// finished logs an item's last line. The time it took is the producer's
// when it says, else the time since its first event here. avg_rate is the
// bytes moved in that time; it is left out when nothing was moved (a
// cache hit, a failure) or the time is unknown, rather than shown as 0 B/s.
func (l *LogReporter) finished(e progress.Event, r *rate, fresh bool, now time.Time) {
	elapsed := now.Sub(r.start)
	moved := e.Done - r.startDone
	if fresh {
		elapsed, moved = 0, e.Done
	}
	if e.Elapsed > 0 {
		elapsed = e.Elapsed
	}
	ev := l.log.Info().Str("task", e.Task).Str("item", e.Item).Str("result", e.Message)
	if e.Unit == "bytes" {
		ev = ev.Int64("bytes", e.Done).Str("size", units.Bytes(e.Done))
		if moved > 0 && elapsed > 0 && e.Message != "cached" && e.Message != "failed" && e.Message != "interrupted" {
			bps := float64(moved) / elapsed.Seconds()
			ev = ev.Int64("avg_rate_bps", int64(bps)).Str("avg_rate", units.Bytes(int64(math.Max(bps, 1)))+"/s")
		}
	} else if e.Done > 0 {
		ev = ev.Int64("done", e.Done)
	}
	if elapsed > 0 {
		ev = ev.Int64("elapsed_ms", elapsed.Milliseconds())
	}
	ev.Msg(e.Task + " finished")
}

// Close stops reporting.
func (l *LogReporter) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
}
