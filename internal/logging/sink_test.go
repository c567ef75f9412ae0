package logging

import (
	"bytes"
	"strings"
	"testing"
)

// Diverted lines reach the display, the rest the original writer, and
// secrets are replaced either way.
func TestSinkDivert(t *testing.T) {
	var stderr, display bytes.Buffer
	sink := NewSink(&stderr)
	log, err := New(sink, Options{Format: "json", Secrets: []string{"hf_SECRET"}})
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("before")
	restore := sink.Divert(&display)
	log.Info().Msg("during hf_SECRET")
	restore()
	log.Info().Msg("after")
	if got := stderr.String(); !strings.Contains(got, "before") || !strings.Contains(got, "after") || strings.Contains(got, "during") {
		t.Errorf("stderr got %q", got)
	}
	if got := display.String(); !strings.Contains(got, "during [REDACTED]") || strings.Contains(got, "before") {
		t.Errorf("display got %q", got)
	}
	if IsTerminal(sink) {
		t.Error("a Sink over a buffer is not a terminal")
	}
}
