package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func newStore(t *testing.T, dir string, keep int, maxBytes int64) *Store {
	t.Helper()
	s, err := NewStore(StoreOptions{Dir: dir, Keep: keep, MaxBytes: maxBytes, Logger: zerolog.Nop()})
	must(t, err)
	return s
}

func (f *fixture) source(key string) Source {
	return Source{Key: key, Label: "v", Build: f.build, Snapshot: filepath.Join(f.root, "snapshots", key+".snap"), Pack: packOpts(key)}
}

func acquire(t *testing.T, s *Store, src Source) *Copy {
	t.Helper()
	c, err := s.Acquire(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStoreSnapshotWrittenOnceAndReused: a build without a snapshot is
// packed once (and unpacked in the same pass); the next copy, here or on
// another host, unpacks that snapshot; a copy on disk is reused as is.
func TestStoreSnapshotWrittenOnceAndReused(t *testing.T) {
	f := newFixture(t)
	src := f.source("k1")
	s := newStore(t, t.TempDir(), 2, 0)
	c := acquire(t, s, src)
	if !c.Made || !c.Packed {
		t.Fatalf("first copy: made %v, packed %v; want both", c.Made, c.Packed)
	}
	snap, err := os.Stat(src.Snapshot)
	if err != nil {
		t.Fatalf("no snapshot published: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "main.py")); err != nil {
		t.Fatal("the copy has no main.py")
	}
	c.Release()
	if c2 := acquire(t, s, src); c2.Made || c2.Dir != c.Dir {
		t.Errorf("second acquire made %v at %s; want the same copy reused", c2.Made, c2.Dir)
	} else {
		c2.Release()
	}
	other := newStore(t, t.TempDir(), 2, 0) // another host's local disk
	c3 := acquire(t, other, src)
	defer c3.Release()
	if !c3.Made || c3.Packed {
		t.Errorf("another host: made %v, packed %v; want made from the snapshot", c3.Made, c3.Packed)
	}
	if now, _ := os.Stat(src.Snapshot); !os.SameFile(snap, now) {
		t.Error("the snapshot was written again")
	}
}

// TestStoreRebuildsDamagedSnapshot: a damaged snapshot is never run: the
// copy is made from the build and the snapshot is replaced by a good one.
func TestStoreRebuildsDamagedSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"truncated", func(t *testing.T, p string) { truncateTo(t, p, fileSize(t, p)-100) }},
		{"flipped byte", func(t *testing.T, p string) { flip(t, p, fileSize(t, p)/2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			src := f.source("k1")
			f.pack(t, "k1", false)
			tc.damage(t, src.Snapshot)
			s := newStore(t, t.TempDir(), 2, 0)
			c := acquire(t, s, src)
			defer c.Release()
			if !c.Made || !c.Packed {
				t.Errorf("made %v, packed %v; want the copy made by packing the build again", c.Made, c.Packed)
			}
			if !sameBytes(t, filepath.Join(c.Dir, "big.bin"), filepath.Join(f.build, "big.bin")) {
				t.Error("the copy differs from the build")
			}
			if _, _, err := UnpackFile(context.Background(), src.Snapshot, t.TempDir(), UnpackOptions{Key: "k1", Source: f.build}); err != nil {
				t.Errorf("the snapshot was not replaced by a good one: %v", err)
			}
		})
	}
}

// TestStoreConcurrentAcquire: workers on one host (two stores on one
// directory, as two processes) asking for one build at once unpack it
// once and all get it whole.
func TestStoreConcurrentAcquire(t *testing.T) {
	f := newFixture(t)
	src := f.source("k1")
	f.pack(t, "k1", false)
	dir := t.TempDir()
	stores := []*Store{newStore(t, dir, 2, 0), newStore(t, dir, 2, 0)}
	var mu sync.Mutex
	made := 0
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			c, err := stores[i%2].Acquire(context.Background(), src)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Release()
			if !sameBytes(t, filepath.Join(c.Dir, "big.bin"), filepath.Join(f.build, "big.bin")) {
				t.Error("a copy was incomplete")
			}
			mu.Lock()
			if c.Made {
				made++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if made != 1 {
		t.Errorf("the copy was made %d times; want once", made)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".unpack-*")); len(left) > 0 {
		t.Errorf("staging left: %v", left)
	}
}

// TestStoreEvictsLeastRecentlyUsed: beyond Keep copies (or MaxBytes) the
// least recently used copy goes, never one in use here or in another
// process; an evicted copy is made again when needed.
func TestStoreEvictsLeastRecentlyUsed(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	s := newStore(t, dir, 2, 0)
	other := newStore(t, dir, 2, 0) // another process on the host
	use := func(st *Store, key string) *Copy {
		c := acquire(t, st, f.source(key))
		time.Sleep(20 * time.Millisecond) // distinct last-use times
		return c
	}
	has := func(keys ...string) {
		t.Helper()
		infos, _ := s.List()
		var got []string
		for _, in := range infos {
			got = append(got, in.Key)
		}
		for _, k := range keys {
			if _, err := os.Stat(s.Path(k)); err != nil {
				t.Errorf("copy %s is gone; copies: %v", k, got)
			}
		}
		if len(got) != len(keys) {
			t.Errorf("copies %v; want %v", got, keys)
		}
	}
	use(s, "a").Release()
	use(s, "b").Release()
	use(s, "c").Release()
	has("b", "c") // a was the least recently used
	held := use(other, "b")
	use(s, "d").Release()
	has("b", "d") // c went: b is in use by the other process
	held.Release()
	if c := use(s, "a"); !c.Made {
		t.Error("an evicted copy was not made again")
	} else {
		c.Release()
	}
	has("d", "a")

	// A size bound: each copy is ~2 MiB, room for one.
	one := newStore(t, t.TempDir(), 5, 3<<20)
	use(one, "x").Release()
	use(one, "y").Release()
	if _, err := os.Stat(one.Path("x")); err == nil {
		t.Error("MaxBytes did not evict the older copy")
	}
}

// TestStoreSpace: a disk that cannot hold the copy even after evicting
// every copy not in use is a SpaceError, and nothing is left behind.
func TestStoreSpace(t *testing.T) {
	f := newFixture(t)
	f.pack(t, "k1", false)
	dir := t.TempDir()
	s := newStore(t, dir, 2, 0)
	s.free = func(string) int64 { return 1 << 10 }
	_, err := s.Acquire(context.Background(), f.source("k1"))
	var se *SpaceError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "COMFY_LOCAL_DIR") {
		t.Fatalf("Acquire = %v; want a SpaceError saying what to do", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 { // .locks
		t.Errorf("left in the store: %v", entries)
	}
}

// TestStoreDistrustsEarlierBoot: a copy made before the machine restarted
// (renamed into place without an fsync) is made again.
func TestStoreDistrustsEarlierBoot(t *testing.T) {
	f := newFixture(t)
	s := newStore(t, t.TempDir(), 2, 0)
	c := acquire(t, s, f.source("k1"))
	c.Release()
	p := filepath.Join(c.Dir, infoFile)
	var in Info
	data, _ := os.ReadFile(p)
	must(t, json.Unmarshal(data, &in))
	in.BootID = "an-earlier-boot"
	data, _ = json.Marshal(in)
	must(t, os.WriteFile(p, data, 0o644))
	if c := acquire(t, s, f.source("k1")); !c.Made {
		t.Error("a copy from an earlier boot was trusted")
	} else {
		c.Release()
	}
}

// TestStoreClear removes copies nobody uses and keeps one in use.
func TestStoreClear(t *testing.T) {
	f := newFixture(t)
	s := newStore(t, t.TempDir(), 5, 0)
	acquire(t, s, f.source("a")).Release()
	held := acquire(t, s, f.source("b"))
	defer held.Release()
	removed, err := s.Clear()
	if err != nil || len(removed) != 1 || removed[0] != "a" {
		t.Errorf("Clear = %v, %v; want [a]", removed, err)
	}
	if _, err := os.Stat(filepath.Join(held.Dir, "main.py")); err != nil {
		t.Error("Clear removed a copy in use")
	}
}
