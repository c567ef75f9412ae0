package comfy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrStopped is what Err reports after Stop ended the process on purpose.
var ErrStopped = errors.New("ComfyUI was stopped")

// StartError means ComfyUI did not become ready: it exited during start-up,
// did not answer in time, or was stopped while starting.
type StartError struct {
	// Reason is "exited", "timeout" or "stopped".
	Reason string
	// ExitCode is the process's exit status (-1 when killed by a signal or
	// still running when given up on).
	ExitCode int
	Signal   string
	After    time.Duration `json:"after_ns"`
	LogTail  []string
	// ImportFailures are custom nodes ComfyUI reported as IMPORT FAILED.
	ImportFailures []ImportFailure
}

func (e *StartError) Error() string {
	var b strings.Builder
	switch e.Reason {
	case "timeout":
		fmt.Fprintf(&b, "ComfyUI did not answer /system_stats within %s (is a custom node hanging at import? raise the start timeout if it is just slow)", e.After.Round(time.Millisecond))
	case "stopped":
		b.WriteString("ComfyUI was stopped while starting")
	default:
		fmt.Fprintf(&b, "ComfyUI exited during start-up (%s)", exitDesc(e.ExitCode, e.Signal))
	}
	if len(e.ImportFailures) > 0 {
		fmt.Fprintf(&b, "; custom nodes failed to import: %s (check their Python requirements)", importNames(e.ImportFailures))
	}
	writeTail(&b, e.LogTail)
	return b.String()
}

// CrashError means ComfyUI died after it was ready, e.g. killed by the OOM
// killer in the middle of a job.
type CrashError struct {
	ExitCode int
	Signal   string
	LogTail  []string
}

func (e *CrashError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ComfyUI exited unexpectedly (%s); it will be restarted for the next job", exitDesc(e.ExitCode, e.Signal))
	if e.Signal == "killed" {
		b.WriteString(" (SIGKILL often means the machine ran out of memory)")
	}
	writeTail(&b, e.LogTail)
	return b.String()
}

func exitDesc(code int, sig string) string {
	if sig != "" {
		return "killed by signal " + sig
	}
	return fmt.Sprintf("exit code %d", code)
}

// maxTailInError bounds how much log goes into an error message.
const maxTailInError = 30

func writeTail(b *strings.Builder, tail []string) {
	if len(tail) == 0 {
		return
	}
	if len(tail) > maxTailInError {
		tail = tail[len(tail)-maxTailInError:]
	}
	b.WriteString("; last log lines:\n")
	b.WriteString(strings.Join(tail, "\n"))
}

func importNames(fs []ImportFailure) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// HTTPError is an unexpected answer from ComfyUI's HTTP API.
type HTTPError struct {
	Op     string // "POST /prompt"
	Status int
	Body   string // the start of the body
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("ComfyUI %s answered HTTP %d", e.Op, e.Status)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// TimeoutError means the job's deadline passed before the prompt finished.
// A prompt that was already queued is removed from the queue and
// interrupted.
type TimeoutError struct {
	PromptID string `json:"prompt_id"`
	After    time.Duration
	// Stage is where the deadline struck: upload, submit, execute or
	// download.
	Stage string `json:"stage"`
	// Interrupted is, for Stage execute, whether ComfyUI confirmed that the
	// prompt stopped. When false it may still be busy: restart it.
	Interrupted bool `json:"interrupted"`
}

func (e *TimeoutError) Error() string {
	after := e.After.Round(time.Millisecond)
	switch {
	case e.Stage != "execute":
		return fmt.Sprintf("prompt %s timed out after %s during %s (raise the job timeout)", e.PromptID, after, e.Stage)
	case e.Interrupted:
		return fmt.Sprintf("prompt %s did not finish within %s and was interrupted (raise the job timeout or make the workflow lighter)", e.PromptID, after)
	}
	return fmt.Sprintf("prompt %s did not finish within %s and ComfyUI did not confirm the interrupt (raise the job timeout; ComfyUI may need a restart)", e.PromptID, after)
}

// InterruptedError means someone else interrupted the prompt (e.g. the
// ComfyUI web page) before it finished.
type InterruptedError struct {
	PromptID string
	NodeID   string
	NodeType string
}

func (e *InterruptedError) Error() string {
	if e.NodeID == "" {
		return fmt.Sprintf("prompt %s was interrupted", e.PromptID)
	}
	return fmt.Sprintf("prompt %s was interrupted at node %s (%s)", e.PromptID, e.NodeID, e.NodeType)
}
