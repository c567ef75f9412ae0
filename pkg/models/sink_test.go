package models

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSinkHashesAndWritesInOrder(t *testing.T) {
	data, digest := testData(5*blockSize+12345, 50)
	p := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	sk := newSink(h, f, newBlockPool(), 0, false)
	// Uneven chunks, as socket reads come.
	for rest, i := data, 0; len(rest) > 0; i++ {
		b := sk.get()
		n := copy(b.b[:min(len(b.b), 1000+i*7919)], rest)
		b.n = n
		sk.put(b)
		rest = rest[n:]
	}
	if err := sk.close(); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		t.Errorf("hash %s, want %s", got, digest)
	}
	if got := sha256hex(mustReadFile(t, p)); got != digest {
		t.Errorf("file hash %s, want %s", got, digest)
	}
}

func TestSinkWriteError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ro")
	os.WriteFile(p, nil, 0o644)
	f, err := os.Open(p) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sk := newSink(sha256.New(), f, newBlockPool(), 0, false)
	for range 2 * blockCount {
		if sk.err() != nil {
			break
		}
		b := sk.get()
		b.n = 10
		sk.put(b)
	}
	if err := sk.close(); err == nil || !strings.Contains(err.Error(), "write to the model store") {
		t.Errorf("err = %v", err)
	}
}

// onLocalDisk reports whether dir is where downloads use direct I/O.
func onLocalDisk(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return localDisk(f)
}
