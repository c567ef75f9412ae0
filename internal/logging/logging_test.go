package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSecretsNeverWritten(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: "json", Secrets: []string{"hf_abcdef123", "abc", ""}})
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str("url", "https://x/?token=hf_abcdef123").Err(errors.New("auth hf_abcdef123 refused")).Msg("download hf_abcdef123")
	out := buf.String()
	if strings.Contains(out, "hf_abcdef123") || strings.Count(out, "[REDACTED]") != 3 {
		t.Fatalf("secret leaked or not masked: %s", out)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("redacted output is not JSON: %v", err)
	}
	buf.Reset()
	log.Info().Msg("abc stays")
	if !strings.Contains(buf.String(), "abc stays") {
		t.Fatalf("a short secret was masked: %s", buf.String())
	}
	if got := Redact("x hf_abcdef123 y", []string{"hf_abcdef123"}); got != "x [REDACTED] y" {
		t.Fatalf("Redact = %q", got)
	}
}

func TestLevels(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Level: "warn", Format: "console"})
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Msg("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Fatalf("got %q", buf.String())
	}
	if _, err := New(&buf, Options{Level: "loud"}); err == nil {
		t.Fatal("bad level accepted")
	}
}
