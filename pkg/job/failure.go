package job

import (
	"context"
	"errors"
	"strings"

	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Error types a failed job reports in details.error_type.
const (
	ErrInput           = "input"
	ErrSpec            = "spec"
	ErrRealize         = "realize"
	ErrComfyStart      = "comfy_start"
	ErrComfyValidation = "comfy_validation"
	ErrComfyExecution  = "comfy_execution"
	ErrTimeout         = "timeout"
	ErrCancelled       = "cancelled"
	ErrOutput          = "output"
	ErrInternal        = "internal"
)

// Failure is a failed job: one readable line for RunPod's "error" and
// structured details for the result's output.
type Failure struct {
	Type    string
	Message string
	Details map[string]any
}

func (f *Failure) Error() string { return f.Message }

// Output is what a failed job returns beside its error line: the details,
// or nothing when there are none (RunPod then posts {"error": ...} alone,
// as for a worker-comfyui validation failure).
func (f *Failure) Output() any {
	if len(f.Details) == 0 {
		return nil
	}
	return f.Details
}

// classify turns any error from a job's stages into a Failure.
func classify(ctx context.Context, stage string, err error) *Failure {
	f := &Failure{Type: ErrInternal, Details: map[string]any{"stage": stage}}
	var (
		ie  *InputError
		nf  *spec.NotFoundError
		se  *spec.Error
		re  *realize.Error
		ve  *comfy.ValidationError
		ee  *comfy.ExecutionError
		te  *comfy.TimeoutError
		ire *comfy.InterruptedError
		ste *comfy.StartError
		ce  *comfy.CrashError
		tl  *output.TooLargeError
		fa  *Failure
	)
	switch {
	case errors.As(err, &fa):
		return fa
	case errors.As(err, &ie):
		f.Type = ErrInput
		f.Details["field"] = ie.Field
	case errors.As(err, &nf):
		f.Type = ErrInput
		f.Details["field"] = "version_id"
	case errors.As(err, &se):
		f.Type = ErrSpec
		f.Details["file"], f.Details["path"] = se.File, se.Path
	case errors.As(err, &ve):
		f.Type = ErrComfyValidation
		f.Details["validation"] = ve
	case errors.As(err, &ee):
		f.Type = ErrComfyExecution
		f.Details["execution"] = ee
	case errors.As(err, &te):
		f.Type = ErrTimeout
		f.Details["timeout"] = te
	case errors.As(err, &ste):
		f.Type = ErrComfyStart
		f.Details["log_tail"], f.Details["import_failures"] = ste.LogTail, ste.ImportFailures
	case errors.As(err, &ce):
		f.Type = ErrComfyExecution
		f.Details["crash"], f.Details["log_tail"] = true, ce.LogTail
	case errors.As(err, &ire), errors.Is(err, context.Canceled) || ctx.Err() != nil:
		f.Type = ErrCancelled
		if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
			err = cause
		}
	case errors.As(err, &tl):
		f.Type = ErrOutput
	case errors.As(err, &re):
		f.Type = ErrRealize
		f.Details["step"] = re.Step
	case stage == "deliver":
		f.Type = ErrOutput
	case stage == "realize":
		// Resolving refs, reaching git hosts, offline misses: all part of
		// making the version ready.
		f.Type = ErrRealize
	}
	full := err.Error()
	f.Message = firstLine(full)
	if full != f.Message {
		f.Details["message"] = full
	}
	return f
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\n"); i >= 0 {
		s = strings.TrimSuffix(strings.TrimSpace(s[:i]), ";")
	}
	return strings.TrimSuffix(s, "; last log lines:")
}
