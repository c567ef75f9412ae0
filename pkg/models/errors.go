package models

import (
	"errors"
	"fmt"
)

// ErrOffline is matched (errors.Is) by a Fetch that would need the network
// while Config.Offline is set.
var ErrOffline = errors.New("model is not in the cache and offline mode is on")

// errStalled is the cause of an attempt cancelled by the idle timeout.
var errStalled = errors.New("no data received within the idle timeout")

// ChecksumError says the downloaded bytes do not have the expected sha256.
// Nothing was placed and the partial download was removed.
type ChecksumError struct {
	Source string // redacted
	Want   string
	Got    string
	Size   int64
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s: sha256 mismatch: want %s, got %s (%d bytes); the file changed upstream or the checksum in the spec is wrong",
		e.Source, e.Want, e.Got, e.Size)
}

// SizeError says the source's size differs from the expected one.
type SizeError struct {
	Source string // redacted
	Want   int64
	Got    int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%s: size mismatch: want %d bytes, the source has %d; the file changed upstream or the size in the spec/lock is wrong",
		e.Source, e.Want, e.Got)
}

// HTTPError is a response status that retrying will not fix.
type HTTPError struct {
	URL        string // redacted
	StatusCode int
	Status     string
	Hint       string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("GET %s: %s", e.URL, e.Status)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// permanentError marks an error that no retry of the same source can fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
