package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/netvol"
)

// TestRoundTrip: what is unpacked is the build, file by file, with modes
// and modification times (Python's .pyc checks), links kept, models and
// links out of the build pointing into the build on the volume.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plain bool
	}{{"zstd", false}, {"plain tar", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			snap := f.pack(t, "k1", tc.plain)
			// The reader sees the volume elsewhere: links follow Source.
			source := filepath.Join(f.root, "elsewhere")
			dest := t.TempDir()
			meta, st, err := UnpackFile(context.Background(), snap, dest, UnpackOptions{Key: "k1", Source: source})
			if err != nil {
				t.Fatal(err)
			}
			if meta.Key != "k1" || meta.Label != "v" || meta.Source != f.build {
				t.Errorf("meta = %+v", meta)
			}
			if st.Size != fileSize(t, snap) || st.Links != 1 || st.Files != 11 {
				t.Errorf("stats = %+v (file %d bytes)", st, fileSize(t, snap))
			}
			want, got := tree(t, f.build), tree(t, dest)
			for rel, w := range want {
				g, ok := got[rel]
				switch {
				case !ok:
					t.Errorf("%s: missing", rel)
				case rel == "models/checkpoints/tiny.safetensors":
					if g.mode&fs.ModeSymlink == 0 || g.data != filepath.Join(source, rel) {
						t.Errorf("model %s: %v -> %q; want a link to the volume's build", rel, g.mode, g.data)
					}
				case rel == "models/checkpoints/linked.safetensors":
					if wantT := filepath.Join(source, "models/checkpoints", w.data); g.data != wantT {
						t.Errorf("link out of the build: -> %q, want %q", g.data, wantT)
					}
				case g != w:
					t.Errorf("%s: got %v %q mtime %d; want %v %q mtime %d", rel, g.mode, trim(g.data), g.mtime, w.mode, trim(w.data), w.mtime)
				}
			}
			if len(got) != len(want) {
				t.Errorf("unpacked %d entries, the build has %d", len(got), len(want))
			}
		})
	}
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// TestCorruptSnapshotsAreRefused: every kind of damage is a CorruptError,
// by the footer check before anything is written or by the digest at the
// end; never a successful unpack.
func TestCorruptSnapshotsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		early  bool // refused before unpacking anything
	}{
		{"truncated in the payload", func(t *testing.T, p string) { truncateTo(t, p, fileSize(t, p)/2) }, true},
		{"truncated in the footer", func(t *testing.T, p string) { truncateTo(t, p, fileSize(t, p)-3) }, true},
		{"empty", func(t *testing.T, p string) { truncateTo(t, p, 0) }, true},
		{"byte flipped in the payload", func(t *testing.T, p string) { flip(t, p, fileSize(t, p)/3) }, false},
		{"byte flipped at the end of the payload", func(t *testing.T, p string) { flip(t, p, -footerSize-1) }, false},
		{"digest flipped", func(t *testing.T, p string) { flip(t, p, -footerSize+45) }, false},
		{"bytes appended", func(t *testing.T, p string) {
			data, _ := os.ReadFile(p)
			must(t, os.WriteFile(p, append(data, "more"...), 0o644))
		}, true},
	} {
		for _, plain := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{true: " (plain)", false: ""}[plain], func(t *testing.T) {
				f := newFixture(t)
				snap := f.pack(t, "k1", plain)
				tc.damage(t, snap)
				dest := t.TempDir()
				_, _, err := UnpackFile(context.Background(), snap, dest, UnpackOptions{Key: "k1", Source: f.build})
				if !IsCorrupt(err) {
					t.Fatalf("UnpackFile = %v; want a CorruptError", err)
				}
				if entries, _ := os.ReadDir(dest); tc.early && len(entries) > 0 {
					t.Errorf("a snapshot refused by its footer wrote %d entries", len(entries))
				}
			})
		}
	}
	t.Run("another build's snapshot", func(t *testing.T) {
		f := newFixture(t)
		snap := f.pack(t, "k1", false)
		_, _, err := UnpackFile(context.Background(), snap, t.TempDir(), UnpackOptions{Key: "k2", Source: f.build})
		if !IsCorrupt(err) || !strings.Contains(err.Error(), "k1") {
			t.Fatalf("UnpackFile = %v; want a CorruptError naming the build it is for", err)
		}
	})
}

// TestUnpackStaysInside: names that leave the directory, or pass through
// a link the snapshot made, are refused before anything is written there.
func TestUnpackStaysInside(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tar.Header
	}{
		{"dot-dot", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg}}},
		{"absolute", []tar.Header{{Name: "/tmp/evil", Typeflag: tar.TypeReg}}},
		{"through a link", []tar.Header{{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "out/evil", Typeflag: tar.TypeReg}}},
		{"twice", []tar.Header{{Name: "a", Typeflag: tar.TypeReg}, {Name: "a", Typeflag: tar.TypeReg}}},
		{"a device", []tar.Header{{Name: "dev", Typeflag: tar.TypeChar}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			_, _, err := Unpack(context.Background(), bytes.NewReader(craft(t, "k", tc.entries)), dest, UnpackOptions{Key: "k", Source: "/vol"})
			if !IsCorrupt(err) {
				t.Fatalf("Unpack = %v; want a CorruptError", err)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(dest), "evil")); err == nil {
				t.Fatal("a file was written outside the destination")
			}
		})
	}
}

// craft writes a well-formed plain snapshot holding entries as given.
func craft(t *testing.T, key string, entries []tar.Header) []byte {
	t.Helper()
	var payload bytes.Buffer
	tw := tar.NewWriter(&payload)
	meta := []byte(`{"format":1,"key":"` + key + `"}`)
	must(t, tw.WriteHeader(&tar.Header{Name: metaName, Typeflag: tar.TypeReg, Size: int64(len(meta)), Mode: 0o644}))
	tw.Write(meta)
	for _, h := range entries {
		h.Mode = 0o644
		must(t, tw.WriteHeader(&h))
	}
	must(t, tw.Close())
	ft := footer{codec: codecTar, length: int64(payload.Len()), entries: int64(len(entries) + 1)}
	ft.sum = sha256.Sum256(payload.Bytes())
	return append(payload.Bytes(), ft.marshal()...)
}

// TestPublishOnce: the first writer's snapshot stays; later and
// concurrent writers of the same key use it and leave no temp file.
func TestPublishOnce(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(f.root, "snapshots", "k1.snap")
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 4 {
		wg.Go(func() {
			_, won, err := Publish(ctx, f.build, path, packOpts("k1"))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			if won {
				wins++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d writers published; want exactly 1", wins)
	}
	before, err := os.Stat(path)
	must(t, err)
	if _, won, err := Publish(ctx, f.build, path, packOpts("k1")); won || err != nil {
		t.Errorf("Publish over an existing snapshot = %v, %v; want it kept", won, err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("a published snapshot was replaced")
	}
	if _, _, err := UnpackFile(ctx, path, t.TempDir(), UnpackOptions{Key: "k1", Source: f.build}); err != nil {
		t.Errorf("the published snapshot does not unpack: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestPackRefusesAFileThatChanged: a file whose size is not the one it
// was listed with (the build changed under the packer) is an error, not a
// snapshot with a short or long entry; small files are read ahead, large
// ones streamed, and both check.
func TestPackRefusesAFileThatChanged(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	must(t, os.WriteFile(p, []byte("0123456789"), 0o644))
	d, err := os.Open(dir)
	must(t, err)
	defer d.Close()
	readExactly := func(_ string, size int64) ([]byte, error) {
		return readExactly(int(d.Fd()), &entry{name: "f", path: p, size: size})
	}
	for _, listed := range []int64{5, 20} {
		if _, err := readExactly(p, listed); err == nil || !strings.Contains(err.Error(), "changed while packed") {
			t.Errorf("read ahead, listed with %d bytes: %v", listed, err)
		}
		tw := tar.NewWriter(&bytes.Buffer{})
		tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: listed})
		if err := copyFile(tw, p, listed, make([]byte, 4)); err == nil {
			t.Errorf("streamed, listed with %d bytes: no error", listed)
		}
	}
	if data, err := readExactly(p, 10); err != nil || string(data) != "0123456789" {
		t.Errorf("unchanged file: %q, %v", data, err)
	}
}

// TestSignalsDoNotBreakFUSE: on FUSE a system call in flight when its
// thread gets a signal fails with EINTR, and the Go runtime signals its
// own threads to preempt goroutines. Packing from and unpacking to a
// simulated network volume while the process is showered with signals
// still works.
func TestSignalsDoNotBreakFUSE(t *testing.T) {
	backing := t.TempDir()
	genTree(t, filepath.Join(backing, "build"), 400)
	vol := netvol.MountT(t, backing, "", netvol.Options{MetaDelay: time.Millisecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Microsecond):
				syscall.Kill(os.Getpid(), syscall.SIGURG) // what the runtime sends to preempt
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	ctx := context.Background()
	snap := filepath.Join(vol.Dir(), "s.snap")
	if _, _, err := Publish(ctx, filepath.Join(vol.Dir(), "build"), snap, PackOptions{Meta: Meta{Key: "k"}}); err != nil {
		t.Fatalf("pack from the volume: %v", err)
	}
	dest := filepath.Join(vol.Dir(), "copy")
	must(t, os.Mkdir(dest, 0o755))
	if _, st, err := UnpackFile(ctx, snap, dest, UnpackOptions{Key: "k"}); err != nil || st.Files != 401 {
		t.Fatalf("unpack to the volume: %d files, %v", st.Files, err)
	}
}
