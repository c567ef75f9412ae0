package endpoint

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeName(t *testing.T) {
	long := strings.Repeat("é", 150) + ".png" // 300 bytes of stem
	tests := []struct{ in, want string }{
		{"ComfyUI_00001_.png", "ComfyUI_00001_.png"},
		{"../x.png", "x.png"},
		{"a/b/c.webp", "c.webp"},
		{`C:\Users\me\img.png`, "img.png"},
		{"..", ""},
		{".", ""},
		{"...", ""},
		{"/", ""},
		{" .hidden ", "hidden"},
		{"name. ", "name"},
		{"tab\there.png", "tab_here.png"},
		{"q?<>|*\".png", "q______.png"},
		{"bad\xffutf8.png", "bad_utf8.png"},
		{"图像.png", "图像.png"},
	}
	for _, tt := range tests {
		if got := safeName(tt.in); got != tt.want {
			t.Errorf("safeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	got := safeName(long)
	if len(got) > maxNameBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, ".png") || !strings.HasPrefix(got, "éé") {
		t.Errorf("safeName(long) = %q (%d bytes): want valid UTF-8 under %d bytes keeping .png", got, len(got), maxNameBytes)
	}
}
