package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func BenchmarkTmpUnpackFile(b *testing.B) {
	p := os.Getenv("SNAP")
	if p == "" {
		b.Skip()
	}
	key := strings.TrimSuffix(filepath.Base(p), ".snap")
	for b.Loop() {
		dest := filepath.Join(b.TempDir(), "c")
		os.Mkdir(dest, 0o755)
		if _, _, err := UnpackFile(context.Background(), p, dest, UnpackOptions{Key: key, Source: "/x"}); err != nil {
			b.Fatal(err)
		}
	}
}
