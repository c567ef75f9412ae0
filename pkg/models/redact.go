package models

import (
	"context"
	"errors"
	"strings"

	"github.com/runpod-comfy/worker/internal/redact"
)

const redacted = redact.Mask

// RedactString replaces credentials in a URL-like string (user info, token
// and signature query parameters) with "REDACTED".
func RedactString(s string) string { return redact.URL(s) }

// redactor also removes the configured token values wherever they appear,
// as a last line of defence for text produced by other libraries.
type redactor struct{ secrets []string }

func newRedactor(secrets ...string) redactor {
	var r redactor
	for _, s := range secrets {
		// Very short values would blank out ordinary words.
		if len(s) >= 4 {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

func (r redactor) string(s string) string {
	s = RedactString(s)
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

// error returns err with its message redacted. The result keeps err in its
// chain only when the message was already clean; otherwise the chain could
// hand the secret back through errors.As.
func (r redactor) error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := r.string(msg)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, kind: classify(err)}
}

// redactedError stands in for an error whose text held a secret. It keeps
// the facts callers branch on (context cancellation, retryability).
type redactedError struct {
	msg  string
	kind error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.kind }

// classify keeps the sentinel an error matches, without its text.
func classify(err error) error {
	for _, s := range []error{context.Canceled, context.DeadlineExceeded, errStalled} {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}
