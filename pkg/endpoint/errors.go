package endpoint

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Sentinel errors a caller may test with errors.Is.
var (
	// ErrUnauthorized: the API refused the key (HTTP 401 or 403).
	ErrUnauthorized = errors.New("the RunPod API refused the API key")
	// ErrNotFound: unknown endpoint, or a job id the API no longer knows
	// (results are kept 30 min after /run, 1 min after /runsync).
	ErrNotFound = errors.New("not found")
	// ErrTimeout: CallOptions.Timeout passed before the job finished.
	ErrTimeout = errors.New("timed out waiting for the job")
	// ErrJobFailed: the job ended in a state other than COMPLETED.
	ErrJobFailed = errors.New("job did not complete")
)

// APIError is an unexpected HTTP answer from the endpoint API.
type APIError struct {
	// Op is the route: "run", "runsync", "status", "stream", "cancel", "health".
	Op         string
	EndpointID string
	StatusCode int
	// Body is the start of the answer's body; empty for calls made through
	// the SDK, which drops it.
	Body string
}

func (e *APIError) Error() string {
	var hint string
	switch {
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		hint = fmt.Sprintf(": check that the API key (RUNPOD_API_KEY) is valid and may use endpoint %s", e.EndpointID)
	case e.StatusCode == http.StatusNotFound && (e.Op == "run" || e.Op == "runsync" || e.Op == "health"):
		hint = fmt.Sprintf(": check the endpoint id %q", e.EndpointID)
	case e.StatusCode == http.StatusNotFound:
		hint = ": the job is unknown or its result expired"
	case e.StatusCode == http.StatusTooManyRequests:
		hint = ": rate limited or the queue is full, try again later"
	}
	msg := fmt.Sprintf("RunPod endpoint API /%s: HTTP %d %s%s", e.Op, e.StatusCode, http.StatusText(e.StatusCode), hint)
	if e.Body != "" {
		msg += " (" + e.Body + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrUnauthorized) and ErrNotFound work.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	}
	return false
}

// transient reports whether a failed poll is worth repeating.
func (e *APIError) transient() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// JobError is a job that ended FAILED, CANCELLED or TIMED_OUT.
type JobError struct {
	JobID  string
	Status string
	// Message is the endpoint's error text ("" when it gave none).
	Message string
	// Type is the worker's details.error_type (input, realize,
	// comfy_validation, ...) when the result carries one.
	Type string
	// Details is the job's output next to the error, raw.
	Details []byte
}

func (e *JobError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s ", e.JobID)
	switch e.Status {
	case StatusFailed:
		b.WriteString("failed")
	case StatusCancelled:
		b.WriteString("was cancelled")
	case StatusTimedOut:
		b.WriteString("timed out on the endpoint (its execution timeout passed)")
	default:
		fmt.Fprintf(&b, "ended %s", e.Status)
	}
	if e.Type != "" {
		fmt.Fprintf(&b, " (%s)", e.Type)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrJobFailed) true for every JobError.
func (e *JobError) Is(target error) bool { return target == ErrJobFailed }

// ChecksumError is an output whose content does not match the sha256 (or
// size) the result announced; nothing is left at its path.
type ChecksumError struct {
	Name      string
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("output %s: content does not match the result's checksum (want %s, got %s): the file was not written; call again or download it yourself", e.Name, e.Want, e.Got)
}

// InputError is a request document or input the endpoint would refuse.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// sdkStatus extracts the HTTP status from the SDK's "response status 401
// Unauthorized" errors; 0 when err is not one.
var sdkStatusRE = regexp.MustCompile(`^response status (\d{3})`)

func sdkStatus(err error) int {
	m := sdkStatusRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
