package progressui

import (
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"

	"github.com/runpod-comfy/worker/pkg/progress"
)

// terminal is a pseudo-terminal whose output feeds a terminal emulator,
// so a test can assert what a person would see on the screen.
type terminal struct {
	tty    *os.File
	emu    *vt.Emulator
	copied chan struct{}
}

func newTerminal(t *testing.T, cols, rows int) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	term := &terminal{tty: tty, emu: vt.NewEmulator(cols, rows), copied: make(chan struct{})}
	go func() {
		defer close(term.copied)
		// The master reads EIO once the last slave descriptor is closed.
		_, err := io.Copy(term.emu, ptmx)
		if err != nil && !errors.Is(err, syscall.EIO) {
			t.Errorf("read terminal: %v", err)
		}
	}()
	return term
}

// screen closes the terminal and returns what it shows, one string per
// row, trailing blanks cut.
func (term *terminal) screen(t *testing.T) []string {
	t.Helper()
	term.tty.Close()
	select {
	case <-term.copied:
	case <-time.After(5 * time.Second):
		t.Fatal("terminal output never ended")
	}
	var rows []string
	for _, r := range strings.Split(term.emu.String(), "\n") {
		rows = append(rows, strings.TrimRight(r, " "))
	}
	for len(rows) > 0 && rows[len(rows)-1] == "" {
		rows = rows[:len(rows)-1]
	}
	return rows
}

// TestBarsOnATerminal drives the display through a realize as a person sees
// it: parallel downloads, pip with its phases, log lines (one wider than
// the terminal), a failure, a cache hit and an interruption. The final
// screen must hold every log line once and whole, the failure, and one
// summary line; no bar, no spinner, no "0 B".
func TestBarsOnATerminal(t *testing.T) {
	const cols = 60
	term := newTerminal(t, cols, 40)
	b := NewBars(term.tty)
	frame := func() { time.Sleep(350 * time.Millisecond) } // two refreshes
	dl := func(item string, done, total int64) progress.Event {
		return progress.Event{Task: "download", Item: item, Done: done, Total: total, Unit: "bytes"}
	}
	const mib = 1 << 20
	longLog := "INF realize step=core action=done detail=\"exported 1 repository at 0123456789abcdef0123456789abcdef01234567\" took_ms=1234"

	b.Report(dl("checkpoints/a-very-long-model-name-that-does-not-fit-the-terminal.safetensors", 0, 100*mib))
	b.Report(dl("loras/b.safetensors", 0, 10*mib))
	b.Report(progress.Event{Task: "pip", Item: "comfy-demo", Unit: "packages", Message: "Collecting torch"})
	frame()
	io.WriteString(b, "INF first log line\n")
	b.Report(dl("checkpoints/a-very-long-model-name-that-does-not-fit-the-terminal.safetensors", 40*mib, 100*mib))
	b.Report(progress.Event{Task: "pip", Item: "comfy-demo", Done: 2, Unit: "packages", Message: "Collecting numpy"})
	frame()
	io.WriteString(b, longLog+"\n")
	b.Report(progress.Event{Task: "download", Item: "vae/c.safetensors", Done: 5 * mib, Total: 5 * mib, Unit: "bytes", Finished: true, Message: "cached"})
	b.Report(progress.Event{Task: "download", Item: "loras/b.safetensors", Unit: "bytes", Finished: true, Message: "failed"})
	frame()
	b.Report(progress.Event{Task: "download", Item: "checkpoints/a-very-long-model-name-that-does-not-fit-the-terminal.safetensors",
		Done: 100 * mib, Total: 100 * mib, Unit: "bytes", Finished: true, Message: "downloaded", Elapsed: 4 * time.Second})
	b.Report(progress.Event{Task: "pip", Item: "comfy-demo", Done: 3, Unit: "packages", Finished: true, Message: "installed", Elapsed: 9 * time.Second})
	b.Report(dl("loras/d.safetensors", 1*mib, 10*mib))
	frame()
	io.WriteString(b, "INF last log line\n")
	frame()
	b.Close() // as on Ctrl+C: d never finished
	io.WriteString(b, "ERR interrupted\n")
	rows := term.screen(t)
	shown := strings.Join(rows, "\n")
	t.Logf("screen:\n%s", shown)

	for _, r := range rows {
		if len([]rune(r)) > cols {
			t.Errorf("row wider than the terminal: %q", r)
		}
		for _, bad := range []string{"0 B", "[==", "|", "Collecting", "loras/d"} {
			if strings.Contains(r, bad) {
				t.Errorf("row %q still shows %q: a bar, spinner or empty byte count was left behind", r, bad)
			}
		}
	}
	// The long line wraps over rows; joined back, it is there once, whole.
	joined := strings.Join(rows, "")
	for _, l := range []string{"INF first log line", longLog, "INF last log line", "ERR interrupted"} {
		if n := strings.Count(joined, l); n != 1 {
			t.Errorf("log line %q is on the screen %d times, want once", l, n)
		}
	}
	if strings.Index(joined, "INF first log line") > strings.Index(joined, longLog) || strings.Index(joined, longLog) > strings.Index(joined, "INF last log line") {
		t.Error("log lines out of order")
	}
	if n := strings.Count(shown, "download loras/b.safetensors failed"); n != 1 {
		t.Errorf("the failure is shown %d times, want once", n)
	}
	summaries := 0
	for _, r := range rows {
		if strings.HasPrefix(r, "done:") {
			summaries++
		}
	}
	// The summary is printed in full at the end and may wrap; only the
	// late log line follows it.
	tail := strings.Join(rows, "")
	tail = tail[strings.LastIndex(tail, "done:"):]
	want := "done: 1 downloaded (100.0 MiB), 1 cached, 1 failed, 1 interrupted; pip: 3 packages installed in 9sERR interrupted"
	if summaries != 1 || tail != want {
		t.Fatalf("want one summary line, then the late log line:\n%q\ngot %d summaries, the screen ends with\n%q", want, summaries, tail)
	}
}

func TestFit(t *testing.T) {
	cases := []struct {
		left, right string
		width       int
		want        string
	}{
		{"name", "  1 MiB", 20, "name  1 MiB"},
		{"x", strings.Repeat("y", 50), 10, "xyyyyyyyyy"},
		{"abc", "", 0, ""},
	}
	for _, c := range cases {
		got := fit(c.left, c.right, c.width)
		if got != c.want || len([]rune(got)) > c.width {
			t.Errorf("fit(%q, %q, %d) = %q (%d runes), want %q", c.left, c.right, c.width, got, len([]rune(got)), c.want)
		}
	}
	// A shortened name keeps both ends, so the file is recognisable.
	got := fit("checkpoints/a-very-long-model-name.safetensors", "  12.0 MiB", 40)
	if !strings.HasPrefix(got, "checkpoints/") || !strings.Contains(got, ".safetensors  12.0 MiB") || len(got) > 40 {
		t.Errorf("fit kept neither end: %q", got)
	}
}
