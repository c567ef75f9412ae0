package models

import (
	"context"
	"errors"
	"regexp"
	"strings"
)

const redacted = "REDACTED"

var (
	userinfoRe = regexp.MustCompile(`(://)[^/@\s?#]+@`)
	// Query parameters that carry credentials: Civitai's ?token=, API keys,
	// and the signatures of pre-signed CDN URLs (X-Amz-Signature, sig=, ...),
	// which work as short-lived credentials.
	secretParamRe = regexp.MustCompile(`([?&;][^=&#\s]*(?i:token|key|sig|secret|passw|auth|credential)[^=&#\s]*=)[^&#\s]*`)
)

// RedactString replaces credentials in a URL-like string (user info, token
// and signature query parameters) with "REDACTED".
func RedactString(s string) string {
	s = userinfoRe.ReplaceAllString(s, "${1}"+redacted+"@")
	return secretParamRe.ReplaceAllString(s, "${1}"+redacted)
}

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
