package comfy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/runpod-comfy/worker/pkg/comfy/comfytest"
)

func TestReadHashed(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 50_000) // 800 kB, several chunks
	sum := sha256.Sum256(content)
	for _, tc := range []struct {
		name    string
		body    io.Reader
		n       int64
		wantErr error
	}{
		{"whole", bytes.NewReader(content), int64(len(content)), nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(content[:5000])), 5000, nil},
		{"half reads", iotest.HalfReader(bytes.NewReader(content)), int64(len(content)), nil},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(content)), int64(len(content)), nil},
		{"empty", bytes.NewReader(nil), 0, nil},
		{"short body", bytes.NewReader(content[:1000]), 2000, io.ErrUnexpectedEOF},
		{"broken connection", io.MultiReader(bytes.NewReader(content[:300_000]), iotest.ErrReader(errors.New("connection reset"))), int64(len(content)), errors.New("connection reset")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sha256.New()
			data, err := readHashed(tc.body, tc.n, h)
			if tc.wantErr != nil {
				if err == nil || err.Error() != tc.wantErr.Error() || data != nil {
					t.Fatalf("err = %v, want %v (and no data)", err, tc.wantErr)
				}
				return
			}
			want := content[:tc.n]
			wantSum := sha256.Sum256(want)
			if tc.n == int64(len(content)) {
				wantSum = sum
			}
			if err != nil || !bytes.Equal(data, want) || !bytes.Equal(h.Sum(nil), wantSum[:]) {
				t.Fatalf("read %d bytes (err %v), digest %x; want %d bytes, %x", len(data), err, h.Sum(nil), len(want), wantSum)
			}
		})
	}
}

// TestRunKeepsOutputsInMemoryWithinBudget: outputs that fit the budget are
// returned in memory and never written; the rest go to disk; every output
// carries the digest of what ComfyUI served.
func TestRunKeepsOutputsInMemoryWithinBudget(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	src := func(o Output) []byte {
		dir := map[string]string{"output": srv.Options().OutputDir, "temp": srv.Options().TempDir}[o.Type]
		b, err := os.ReadFile(filepath.Join(dir, o.Subfolder, o.Filename))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		budget   int64
		inMemory int // how many outputs, at least, are kept in memory
		onDisk   int // at least
	}{
		{"no budget", 0, 0, 4},
		{"budget for everything", 64 << 20, 4, 0},
		{"budget for some", 400, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			res, err := c.Run(t.Context(), mustWorkflow(t, allKindsWorkflow), RunOptions{OutputDir: dest, MemoryBudget: tc.budget})
			if err != nil {
				t.Fatal(err)
			}
			var mem, disk int
			var memBytes int64
			for _, o := range res.Outputs {
				want := src(o)
				sum := sha256.Sum256(want)
				var have []byte
				switch {
				case o.Data != nil && o.Path == "":
					have, mem, memBytes = o.Data, mem+1, memBytes+int64(len(o.Data))
				case o.Data == nil && strings.HasPrefix(o.Path, dest):
					have, _ = os.ReadFile(o.Path)
					disk++
				default:
					t.Fatalf("output %s: Data %d bytes, Path %q", o.Filename, len(o.Data), o.Path)
				}
				if !bytes.Equal(have, want) || o.Size != int64(len(want)) || o.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("output %s: %d bytes, size %d, sha %s; want %d bytes, %x", o.Filename, len(have), o.Size, o.SHA256, len(want), sum)
				}
			}
			if mem < tc.inMemory || disk < tc.onDisk || memBytes > tc.budget {
				t.Errorf("%d outputs in memory (%d bytes, budget %d), %d on disk; want at least %d and %d", mem, memBytes, tc.budget, disk, tc.inMemory, tc.onDisk)
			}
			if mem == len(res.Outputs) {
				if entries, _ := os.ReadDir(dest); len(entries) != 0 {
					t.Errorf("outputs kept in memory were also written: %v", entries)
				}
			}
		})
	}
}
