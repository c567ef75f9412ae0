package comfy

import (
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestPumpLines(t *testing.T) {
	long := strings.Repeat("x", maxLogLine+100)
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"newlines", "a\nb\n", []string{"a", "b"}},
		{"no final newline", "a\nb", []string{"a", "b"}},
		{"crlf and blank lines", "a\r\n\r\nb\n\n", []string{"a", "b"}},
		{"progress bar redraws", " 10%|#  |\r 50%|#### |\r100%|######|\n", []string{" 10%|#  |", " 50%|#### |", "100%|######|"}},
		{"overlong line cut", long + "\nnext\n", []string{strings.Repeat("x", maxLogLine) + "…", "next"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				var got []string
				pumpLines(r, func(l string) { got = append(got, l) })
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestLogBook(t *testing.T) {
	b := newLogBook(3)
	for _, l := range []string{
		"Traceback (most recent call last):",
		"Cannot import /c/custom_nodes/ComfyUI-Foo module for custom nodes: No module named 'foo'",
		"Import times for custom nodes:",
		"   0.0 seconds: /c/custom_nodes/websocket_image_save.py",
		"   0.1 seconds (IMPORT FAILED): /c/custom_nodes/ComfyUI-Foo",
		"   0.0 seconds (IMPORT FAILED): /c/custom_nodes/single_file.py",
		"   0.1 seconds (IMPORT FAILED): /c/custom_nodes/ComfyUI-Foo",
	} {
		b.add(l)
	}
	if got := b.tail(10); len(got) != 3 || !strings.Contains(got[1], "single_file") || !strings.Contains(got[0], "ComfyUI-Foo") {
		t.Errorf("tail = %q", got)
	}
	if got := b.tail(1); len(got) != 1 {
		t.Errorf("tail(1) = %q", got)
	}
	want := []ImportFailure{
		{Name: "ComfyUI-Foo", Path: "/c/custom_nodes/ComfyUI-Foo", Error: "No module named 'foo'"},
		{Name: "single_file", Path: "/c/custom_nodes/single_file.py"},
	}
	if got := b.importFailures(); !slices.Equal(got, want) {
		t.Errorf("import failures = %+v", got)
	}
}
