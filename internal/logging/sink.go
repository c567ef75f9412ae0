package logging

import (
	"io"
	"os"
	"sync"
)

// Sink is a logger's destination that can be lent out for a while: while a
// progress display owns the terminal, log lines must go through it (it
// prints them above its bars) or the next frame overwrites them.
type Sink struct {
	base io.Writer

	mu  sync.Mutex
	cur io.Writer
}

// NewSink writes to w until diverted.
func NewSink(w io.Writer) *Sink { return &Sink{base: w, cur: w} }

func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Write(p)
}

// Divert sends every write to w until restore is called. The logger keeps
// its format: whether it writes colours and console lines was decided by
// the Sink's own writer.
func (s *Sink) Divert(w io.Writer) (restore func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur
	s.cur = w
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cur = prev
	}
}

// File is the terminal or file underneath, for terminal detection; nil
// when it is neither.
func (s *Sink) File() *os.File {
	f, _ := s.base.(*os.File)
	return f
}
