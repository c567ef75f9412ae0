// Package logging builds the process logger: zerolog to stderr, readable on
// a terminal and JSON lines otherwise, with every configured secret
// replaced before a byte reaches the output.
package logging

import (
	"bytes"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Options configure New.
type Options struct {
	// Level is a zerolog level name; "" means info.
	Level string
	// Format is "json", "console" or "" (console on a terminal).
	Format string
	// Secrets are values that must never be written (tokens, keys).
	Secrets []string
}

// New returns a logger writing to w.
func New(w io.Writer, o Options) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if o.Level != "" {
		l, err := zerolog.ParseLevel(o.Level)
		if err != nil {
			return zerolog.Nop(), err
		}
		lvl = l
	}
	out := io.Writer(NewRedactor(w, o.Secrets))
	console := o.Format == "console" || (o.Format == "" && IsTerminal(w))
	if console {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly, NoColor: !IsTerminal(w)}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// IsTerminal reports whether w is a terminal (or a Sink writing to one).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if s, isSink := w.(*Sink); isSink {
		f, ok = s.File(), s.File() != nil
	}
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Redactor replaces secrets in everything written through it. zerolog
// writes one whole event per Write, so a secret is never split across
// calls.
type Redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte
}

// NewRedactor wraps w. Secrets shorter than 4 bytes are ignored: replacing
// them would mangle ordinary text and they protect nothing.
func NewRedactor(w io.Writer, secrets []string) *Redactor {
	r := &Redactor{w: w}
	for _, s := range secrets {
		if len(s) >= 4 {
			r.secrets = append(r.secrets, []byte(s))
		}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

var mask = []byte("[REDACTED]")

func (r *Redactor) Write(p []byte) (int, error) {
	out := p
	for _, s := range r.secrets {
		if bytes.Contains(out, s) {
			out = bytes.ReplaceAll(out, s, mask)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Redact replaces secrets in s, for error text shown outside the logger.
func Redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = string(bytes.ReplaceAll([]byte(s), []byte(sec), mask))
		}
	}
	return s
}
