package endpoint

import (
	"testing"

	"github.com/runpod-comfy/worker/pkg/progress"
)

func TestUpdateEvent(t *testing.T) {
	tests := []struct {
		name string
		u    Update
		want progress.Event
	}{
		{"queued", Update{JobID: "j", Status: StatusInQueue},
			progress.Event{Task: "job", Item: "j", Message: "IN_QUEUE"}},
		{"execute", Update{JobID: "j", Status: StatusInProgress, Progress: raw(`{"stage":"execute","node":"3","value":5,"max":20,"unit":"steps"}`)},
			progress.Event{Task: "job", Item: "j", Done: 5, Total: 20, Unit: "steps", Message: "IN_PROGRESS: execute node 3"}},
		{"download", Update{JobID: "j", Status: StatusInProgress, Progress: raw(`{"stage":"realize","task":"download","item":"ckpt","done":10,"total":100,"unit":"bytes"}`)},
			progress.Event{Task: "job", Item: "j", Done: 10, Total: 100, Unit: "bytes", Message: "IN_PROGRESS: realize ckpt"}},
		{"foreign progress", Update{JobID: "j", Status: StatusInProgress, Progress: raw(`"50%"`)},
			progress.Event{Task: "job", Item: "j", Message: `IN_PROGRESS: "50%"`}},
		{"done", Update{JobID: "j", Status: StatusCompleted},
			progress.Event{Task: "job", Item: "j", Message: "COMPLETED", Finished: true}},
	}
	for _, tt := range tests {
		if got := tt.u.Event(); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
