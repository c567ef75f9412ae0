package job

import (
	"errors"
	"fmt"
	"strings"

	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/output"
)

// shapeWCFailure turns a failure into worker-comfyui's: its error line
// where it has one for the problem ("Job processing failed" with the
// reasons as details, its input messages), and an output that holds only
// "details", or nothing. Its clients read those two keys.
func shapeWCFailure(f *Failure, err error) {
	var (
		wf      *output.WCFailure
		ie      *InputError
		ee      *comfy.ExecutionError
		details []string
	)
	switch {
	case errors.As(err, &wf):
		f.Message, details = wf.Message, wf.Details
	case errors.As(err, &ie) && ie.Theirs != "":
		f.Message, details = ie.Theirs, ie.TheirsDetails
	case errors.As(err, &ee):
		f.Message, details = output.WCJobFailed, []string{wcExecutionError(ee)}
	}
	f.Details = nil
	if len(details) > 0 {
		f.Details = map[string]any{"details": details}
	}
}

// wcExecutionError is worker-comfyui's line for a node that raised.
func wcExecutionError(ee *comfy.ExecutionError) string {
	return fmt.Sprintf("Workflow execution error: Node Type: %s, Node ID: %s, Message: %s",
		ee.NodeType, ee.NodeID, strings.TrimSpace(ee.ExceptionMessage))
}

// hasWCFiles reports whether a run wrote any file worker-comfyui returns.
func hasWCFiles(res *comfy.Result) bool {
	for _, o := range res.Outputs {
		if output.WCSection(o.Kind, o.Filename, o.Type) != "" && (o.Path != "" || o.Data != nil) {
			return true
		}
	}
	return false
}
