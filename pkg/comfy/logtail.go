package comfy

import (
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// ImportFailure is a custom node ComfyUI could not import at start-up.
type ImportFailure struct {
	// Name is the node's folder (or .py file, without extension) under
	// custom_nodes.
	Name string `json:"name"`
	Path string `json:"path"`
	// Error is the exception message ComfyUI logged for it, when it did.
	Error string `json:"error,omitempty"`
}

// ComfyUI logs, for a node that fails to import:
//
//	Cannot import /x/custom_nodes/Foo module for custom nodes: No module named 'bar'
//	...
//	Import times for custom nodes:
//	   0.0 seconds (IMPORT FAILED): /x/custom_nodes/Foo
var (
	importFailedRE = regexp.MustCompile(`^\s*[\d.]+ seconds \(IMPORT FAILED\): (.+?)\s*$`)
	cannotImportRE = regexp.MustCompile(`Cannot import (.+?) module for custom nodes: (.*)$`)
)

// readyLine is what ComfyUI prints once its port is bound.
const readyLine = "To see the GUI go to:"

// logBook keeps the tail of ComfyUI's output and what it says about
// custom node imports. Safe for concurrent use.
type logBook struct {
	mu       sync.Mutex
	ring     []string
	next     int
	full     bool
	failures []ImportFailure
	causes   map[string]string
}

func newLogBook(size int) *logBook {
	return &logBook{ring: make([]string, size), causes: map[string]string{}}
}

func (b *logBook) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ring[b.next] = line
	b.next = (b.next + 1) % len(b.ring)
	if b.next == 0 {
		b.full = true
	}
	if m := cannotImportRE.FindStringSubmatch(line); m != nil {
		b.causes[m[1]] = m[2]
	}
	if m := importFailedRE.FindStringSubmatch(line); m != nil {
		path := m[1]
		for _, f := range b.failures {
			if f.Path == path {
				return
			}
		}
		b.failures = append(b.failures, ImportFailure{Name: nodeName(path), Path: path})
	}
}

func nodeName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".py")
}

// tail returns up to n of the most recent lines, oldest first.
func (b *logBook) tail(n int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var all []string
	if b.full {
		all = append(all, b.ring[b.next:]...)
	}
	all = append(all, b.ring[:b.next]...)
	if n >= 0 && len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

func (b *logBook) importFailures() []ImportFailure {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]ImportFailure, len(b.failures))
	for i, f := range b.failures {
		f.Error = b.causes[f.Path]
		out[i] = f
	}
	return out
}

// maxLogLine bounds one logged line; tqdm bars and dumped tensors can be
// enormous.
const maxLogLine = 8 << 10

// pumpLines reads r until EOF or error, calling emit for every non-empty
// line. Both \n and \r end a line, so progress bars redrawn with \r become
// separate lines instead of one unbounded one.
func pumpLines(r io.Reader, emit func(string)) {
	buf := make([]byte, 32<<10)
	line := make([]byte, 0, 256)
	skipping := false
	flush := func() {
		if len(line) > 0 {
			emit(string(line))
		}
		line = line[:0]
	}
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			switch {
			case c == '\n' || c == '\r':
				if !skipping {
					flush()
				}
				skipping = false
			case skipping:
			case len(line) >= maxLogLine:
				line = append(line, "…"...)
				flush()
				skipping = true
			default:
				line = append(line, c)
			}
		}
		if err != nil {
			if !skipping {
				flush()
			}
			return
		}
	}
}
