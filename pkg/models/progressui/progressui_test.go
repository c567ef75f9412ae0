package progressui

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/syncbuf"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// fakeClock advances only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogReporterRateAndETA(t *testing.T) {
	var buf syncBuffer
	clock := &fakeClock{now: time.Unix(1000, 0)}
	l := NewLogReporter(zerolog.New(&buf), 10*time.Second)
	l.now = clock.Now
	const mib = 1 << 20
	ev := func(done int64) progress.Event {
		return progress.Event{Task: "download", Item: "loras/x.safetensors", Done: done, Total: 100 * mib, Unit: "bytes"}
	}

	l.Report(ev(0))
	for i := 1; i <= 20; i++ { // 1 MiB/s for 20 s, reported every second
		clock.Add(time.Second)
		l.Report(ev(int64(i) * mib))
	}
	l.Report(progress.Event{Task: "download", Item: "loras/x.safetensors", Done: 100 * mib, Total: 100 * mib, Unit: "bytes", Finished: true, Message: "downloaded"})

	lines := logLines(t, buf.String())
	if len(lines) != 4 {
		t.Fatalf("want start, 2 progress lines and finish; got %d:\n%s", len(lines), buf.String())
	}
	if lines[0]["message"] != "download started" || lines[0]["total"] != "100.0 MiB" {
		t.Errorf("start line %v", lines[0])
	}
	p := lines[2]
	if p["message"] != "download progress" || p["rate"] != "1.0 MiB/s" || p["eta"] != "1m20s" || p["percent"] != "20.0%" || p["done"] != "20.0 MiB" {
		t.Errorf("progress line %v", p)
	}
	if f := lines[3]; f["message"] != "download finished" || f["result"] != "downloaded" || f["size"] != "100.0 MiB" {
		t.Errorf("finish line %v", f)
	}

	l.Close()
	n := len(buf.String())
	l.Report(ev(1))
	if len(buf.String()) != n {
		t.Error("reported after Close")
	}
}

func TestLogReporterConcurrent(t *testing.T) {
	var buf syncBuffer
	l := NewLogReporter(zerolog.New(&buf), time.Nanosecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			item := fmt.Sprintf("m%d", g)
			for i := range 200 {
				l.Report(progress.Event{Task: "download", Item: item, Done: int64(i), Total: 200, Unit: "bytes"})
			}
			l.Report(progress.Event{Task: "download", Item: item, Done: 200, Total: 200, Unit: "bytes", Finished: true})
		}()
	}
	wg.Wait()
	finished := strings.Count(buf.String(), "download finished")
	if finished != 8 {
		t.Errorf("%d finish lines, want 8", finished)
	}
}

func TestBars(t *testing.T) {
	before := runtime.NumGoroutine()
	var buf syncBuffer
	b := NewBars(&buf)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			item := fmt.Sprintf("checkpoints/model-%d.safetensors", g)
			for i := int64(0); i <= 64; i++ {
				b.Report(progress.Event{Task: "download", Item: item, Done: i << 20, Total: 64 << 20, Unit: "bytes"})
			}
			msg := "downloaded"
			if g == 3 {
				msg = "failed"
			}
			b.Report(progress.Event{Task: "download", Item: item, Done: 64 << 20, Total: 64 << 20, Unit: "bytes", Finished: true, Message: msg})
		}()
	}
	b.Report(progress.Event{Task: "download", Item: "vae/cached.safetensors", Finished: true, Message: "cached"})
	// One item never finishes: Close must not hang on it.
	b.Report(progress.Event{Task: "download", Item: "stuck", Done: 1, Total: 10, Unit: "bytes"})
	wg.Wait()
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	b.Report(progress.Event{Task: "download", Item: "late", Done: 1})

	out := buf.String()
	for _, want := range []string{"checkpoints/model-0.safetensors", "download checkpoints/model-3.safetensors failed",
		"done: 3 downloaded (192.0 MiB), 1 cached, 1 failed, 1 interrupted"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines: %d before, %d after Close", before, n)
	}
}

func TestAutoPicksLogLinesWhenNotATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := Auto(f, zerolog.Nop(), time.Second)
	defer r.Close()
	if _, ok := r.(*LogReporter); !ok {
		t.Errorf("Auto on a file = %T, want *LogReporter", r)
	}
}

// TestLogReporterFinishedLine: a finished download's line never says
// 0 B/s: a cache hit or a failure has no avg_rate, a download seen only at
// its end takes its time from the event, and durations are whole
// milliseconds under a key that says so.
func TestLogReporterFinishedLine(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name     string
		events   []progress.Event
		wantRate string // "" means no avg_rate field
		wantMS   float64
	}{
		{"cache hit", []progress.Event{{Task: "download", Item: "x", Done: 5 * mib, Total: 5 * mib, Unit: "bytes", Finished: true, Message: "cached", Elapsed: 2 * time.Millisecond}},
			"", 2},
		{"quick download seen only at its end", []progress.Event{{Task: "download", Item: "x", Done: 8 * mib, Total: 8 * mib, Unit: "bytes", Finished: true, Message: "downloaded", Elapsed: 2 * time.Second}},
			"4.0 MiB/s", 2000},
		{"failure", []progress.Event{{Task: "download", Item: "x", Done: 0, Unit: "bytes", Finished: true, Message: "failed", Elapsed: time.Second}},
			"", 1000},
		{"end without a time", []progress.Event{{Task: "download", Item: "x", Done: 8 * mib, Unit: "bytes", Finished: true, Message: "downloaded"}},
			"", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuffer
			l := NewLogReporter(zerolog.New(&buf), time.Second)
			for _, e := range tc.events {
				l.Report(e)
			}
			lines := logLines(t, buf.String())
			f := lines[len(lines)-1]
			if f["message"] != "download finished" {
				t.Fatalf("last line %v", f)
			}
			rate, hasRate := f["avg_rate"]
			if (tc.wantRate == "") == hasRate || (hasRate && rate != tc.wantRate) {
				t.Errorf("avg_rate = %v (present %v), want %q", rate, hasRate, tc.wantRate)
			}
			if ms, _ := f["elapsed_ms"].(float64); ms != tc.wantMS {
				t.Errorf("elapsed_ms = %v, want %v", f["elapsed_ms"], tc.wantMS)
			}
			if _, bare := f["elapsed"]; bare {
				t.Error("a duration without its unit in the key")
			}
		})
	}
}
