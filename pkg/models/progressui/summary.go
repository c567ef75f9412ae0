package progressui

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8/decor"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// summary counts finished items per task for the one line that stands
// for all of them.
type summary struct {
	mu    sync.Mutex
	order []string
	tasks map[string]*taskSum
}

type taskSum struct {
	done, cached, failed, interrupted int
	bytes, units                      int64
	took                              time.Duration
}

func (s *summary) task(name string) *taskSum {
	if s.tasks == nil {
		s.tasks = map[string]*taskSum{}
	}
	t := s.tasks[name]
	if t == nil {
		t = &taskSum{}
		s.tasks[name] = t
		s.order = append(s.order, name)
	}
	return t
}

func (s *summary) add(e progress.Event, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.task(e.Task)
	switch e.Message {
	case "failed":
		t.failed++
	case "interrupted":
		t.interrupted++
	case "cached":
		t.cached++
	default:
		t.done++
		if e.Unit == "bytes" {
			t.bytes += e.Done
		} else {
			t.units += e.Done
		}
		t.took = max(t.took, took)
	}
}

func (s *summary) interrupt(task string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.task(task).interrupted++
}

func (s *summary) line(st decor.Statistics) string {
	return fit(s.text(), "", st.AvailableWidth-1)
}

// text is the summary in full: "done: 2 downloaded (1.2 GiB), 1 cached;
// pip: 35 packages installed in 42s".
func (s *summary) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, name := range s.order {
		parts = append(parts, s.tasks[name].describe(name))
	}
	return "done: " + strings.Join(parts, "; ")
}

func (t *taskSum) describe(task string) string {
	var parts []string
	if t.done > 0 {
		switch {
		case task == "download":
			parts = append(parts, fmt.Sprintf("%d downloaded (%s)", t.done, units.Bytes(t.bytes)))
		case task == "pip":
			parts = append(parts, fmt.Sprintf("%d packages installed in %s", t.units, t.took.Round(time.Second)))
		case t.bytes > 0:
			parts = append(parts, fmt.Sprintf("%d done (%s)", t.done, units.Bytes(t.bytes)))
		default:
			parts = append(parts, fmt.Sprintf("%d done", t.done))
		}
	}
	if t.cached > 0 {
		parts = append(parts, fmt.Sprintf("%d cached", t.cached))
	}
	if t.failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", t.failed))
	}
	if t.interrupted > 0 {
		parts = append(parts, fmt.Sprintf("%d interrupted", t.interrupted))
	}
	out := strings.Join(parts, ", ")
	if task != "download" {
		out = task + ": " + out
	}
	return out
}
