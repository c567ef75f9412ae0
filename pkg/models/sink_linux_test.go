package models

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSinkDirectIO: on a local disk whole blocks are written with direct
// I/O and the unaligned tail through the page cache; the file and the hash
// are the bytes given, whatever the size, and the file is left in buffered
// mode. A start that is not aligned writes through the page cache.
func TestSinkDirectIO(t *testing.T) {
	dir := t.TempDir()
	if !onLocalDisk(t, dir) {
		t.Skip("the temp dir is not on ext4, xfs or btrfs")
	}
	for _, tc := range []struct {
		name       string
		start      int
		size       int
		wantDirect bool
	}{
		{"aligned blocks", 0, 3 * blockSize, true},
		{"unaligned tail", 0, 3*blockSize + 12345, true},
		{"less than a page", 0, 100, false},
		{"empty", 0, 0, false},
		{"resume at a page boundary", 8 * directAlign, 2*blockSize + 7, true},
		{"resume mid-page", 5000, 2 * blockSize, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, _ := testData(tc.start+tc.size, 60)
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, data[:tc.start], 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.Seek(int64(tc.start), io.SeekStart)
			h := sha256.New()
			sk := newSink(h, f, newBlockPool(), int64(tc.start), true)
			for rest := data[tc.start:]; len(rest) > 0; {
				b := sk.get()
				b.n = copy(b.b, rest)
				sk.put(b)
				rest = rest[b.n:]
			}
			if err := sk.close(); err != nil {
				t.Fatal(err)
			}
			if got := sk.directWrites.Load() > 0; got != tc.wantDirect {
				t.Errorf("direct writes: %v, want %v", got, tc.wantDirect)
			}
			if sum := sha256.Sum256(data[tc.start:]); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Error("hash differs from the bytes given")
			}
			if !bytes.Equal(mustReadFile(t, p), data) {
				t.Error("file differs from the bytes given")
			}
			if fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); fl&unix.O_DIRECT != 0 {
				t.Error("the file is left in direct mode")
			}
		})
	}
}
