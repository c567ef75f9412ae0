package pyenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"

	"github.com/runpod-comfy/worker/internal/proc"
	"github.com/runpod-comfy/worker/internal/redact"
)

// tailLines is how much of a tool's output an InstallError keeps: enough
// for pip's conflict explanation, short enough for a log line.
const tailLines = 40

// command is one subprocess run.
type command struct {
	name string
	args []string
	dir  string
	env  []string
	// onLine sees every output line; stream is "stdout" or "stderr".
	onLine func(stream, line string)
	// capture keeps stdout whole (probes, freeze).
	capture bool
}

type outcome struct {
	stdout []byte
	tail   []string
	// exitCode is -1 when the process did not exit by itself.
	exitCode int
}

// run starts c under proc's policy: its own process group, so cancelling
// ctx kills pip and anything it spawned (build backends, compilers), not
// just the leader; and the parent-death signal, so a worker killed with
// kill -9 leaves no pip writing into the venv a new realize takes over.
func run(ctx context.Context, c command) (outcome, error) {
	cmd := proc.Command(ctx, c.name, c.args...)
	cmd.Dir, cmd.Env = c.dir, c.env

	col := &collector{onLine: c.onLine}
	var stdout bytes.Buffer
	out := &lineWriter{stream: "stdout", col: col}
	if c.capture {
		out.copy = &stdout
	}
	cmd.Stdout = out
	cmd.Stderr = &lineWriter{stream: "stderr", col: col}

	err := proc.Run(cmd)
	cmd.Stdout.(*lineWriter).flush()
	cmd.Stderr.(*lineWriter).flush()
	res := outcome{stdout: stdout.Bytes(), tail: col.lines(), exitCode: -1}
	if cmd.ProcessState != nil {
		res.exitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s interrupted: %w", c.name, ctx.Err())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return res, fmt.Errorf("start %s: %w", c.name, err)
	}
	return res, err
}

// collector keeps the last lines of both streams, in the order they came.
// The two pipes are read concurrently, so a late stdout line can arrive
// after pip's final "ERROR:" on stderr; stdout lines are dropped first so
// the error lines survive.
type collector struct {
	mu     sync.Mutex
	onLine func(stream, line string)
	tail   []tailLine
}

type tailLine struct {
	text   string
	stderr bool
}

func (c *collector) add(stream, line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tail = append(c.tail, tailLine{text: line, stderr: stream == "stderr"})
	if len(c.tail) > tailLines {
		drop := 0
		for i, l := range c.tail {
			if !l.stderr {
				drop = i
				break
			}
		}
		c.tail = append(c.tail[:drop], c.tail[drop+1:]...)
	}
	if c.onLine != nil {
		c.onLine(stream, line)
	}
}

func (c *collector) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.tail))
	for _, l := range c.tail {
		out = append(out, l.text)
	}
	for len(out) > 0 && strings.TrimSpace(out[len(out)-1]) == "" {
		out = out[:len(out)-1]
	}
	return out
}

// lineWriter splits a stream into lines for the collector.
type lineWriter struct {
	stream  string
	col     *collector
	copy    *bytes.Buffer
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if w.copy != nil {
		w.copy.Write(p)
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.col.add(w.stream, strings.TrimRight(string(w.partial[:i]), "\r"))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.partial) > 0 {
		w.col.add(w.stream, string(w.partial))
		w.partial = nil
	}
}

// redactArgs hides credentials in index URLs (https://user:token@host/simple,
// ?token=) before arguments reach a log or an error.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = redact.URL(a)
	}
	return out
}
