//go:build linux

package netvol_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/netvol"
)

func TestMetaDelayAndKernelCaching(t *testing.T) {
	const n, delay = 10, 20 * time.Millisecond
	for _, tc := range []struct {
		name string
		opts netvol.Options
		slow bool // every stat pays the delay
	}{
		{"default revalidates every time", netvol.Options{MetaDelay: delay}, true},
		{"kernel cache hides the delay", netvol.Options{MetaDelay: delay, EntryTimeout: time.Minute, AttrTimeout: time.Minute}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backing := t.TempDir()
			if err := os.WriteFile(filepath.Join(backing, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			v := netvol.MountT(t, backing, "", tc.opts)
			start := time.Now()
			for range n {
				if _, err := os.Stat(filepath.Join(v.Dir(), "f")); err != nil {
					t.Fatal(err)
				}
			}
			took, s := time.Since(start), v.Stats()
			trips := s.Lookups + s.Getattrs
			if tc.slow {
				if took < n*delay || s.Lookups < n {
					t.Errorf("%d stats took %v with %d lookups; want >= %v and >= %d lookups (%+v)", n, took, s.Lookups, n*delay, n, s)
				}
			} else if took >= n*delay/2 || trips > 2 {
				t.Errorf("%d cached stats took %v with %d round trips; want < %v and <= 2 (%+v)", n, took, trips, n*delay/2, s)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	backing := t.TempDir()
	if err := os.WriteFile(filepath.Join(backing, "five"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := netvol.MountT(t, backing, "", netvol.Options{})
	at := func(name string) string { return filepath.Join(v.Dir(), name) }
	for _, tc := range []struct {
		name string
		op   func() error
		want netvol.Stats // Lookups and Getattrs: at least; the rest exactly
	}{
		{"stat", func() error { _, err := os.Stat(at("five")); return err },
			netvol.Stats{Lookups: 1}},
		{"read", func() error { _, err := os.ReadFile(at("five")); return err },
			netvol.Stats{Lookups: 1, Opens: 1, BytesRead: 5}},
		{"create and write", func() error { return os.WriteFile(at("seven"), []byte("1234567"), 0o644) },
			netvol.Stats{Lookups: 1, Opens: 1, BytesWritten: 7}},
		{"list", func() error { _, err := os.ReadDir(v.Dir()); return err },
			netvol.Stats{Readdirs: 1}},
		{"missing file", func() error {
			if _, err := os.Stat(at("nope")); !errors.Is(err, os.ErrNotExist) {
				return errors.New("stat of a missing file did not fail with not-exist")
			}
			return nil
		}, netvol.Stats{Lookups: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v.ResetStats()
			if err := tc.op(); err != nil {
				t.Fatal(err)
			}
			got := v.Stats()
			if got.Lookups < tc.want.Lookups || got.Getattrs < tc.want.Getattrs ||
				got.Opens != tc.want.Opens || got.Readdirs != tc.want.Readdirs ||
				got.BytesRead != tc.want.BytesRead || got.BytesWritten != tc.want.BytesWritten {
				t.Errorf("stats %+v, want %+v", got, tc.want)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(backing, "seven")); err != nil || string(b) != "1234567" {
		t.Errorf("the backing directory has %q, %v; want the file written through the volume", b, err)
	}
}

func TestBandwidthCap(t *testing.T) {
	const size, bw = 1 << 20, 4 << 20 // 1 MiB at 4 MiB/s: about 250 ms
	data := bytes.Repeat([]byte("netvol!\n"), size/8)
	for _, tc := range []struct {
		name string
		opts netvol.Options
		op   func(dir string) error
		read bool
	}{
		{"write", netvol.Options{WriteBandwidth: bw}, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "out"), data, 0o644)
		}, false},
		{"read", netvol.Options{ReadBandwidth: bw}, func(dir string) error {
			got, err := os.ReadFile(filepath.Join(dir, "in"))
			if err == nil && !bytes.Equal(got, data) {
				err = errors.New("read back different bytes")
			}
			return err
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backing := t.TempDir()
			if err := os.WriteFile(filepath.Join(backing, "in"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			v := netvol.MountT(t, backing, "", tc.opts)
			start := time.Now()
			if err := tc.op(v.Dir()); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			ideal := time.Duration(float64(size) / bw * float64(time.Second))
			const burst = time.Second / 20 // what the bucket lets through at once
			t.Logf("%s of %d bytes at %d B/s took %v (ideal %v)", tc.name, size, bw, took, ideal)
			if took < (ideal-burst)*8/10 || took > 3*ideal+time.Second {
				t.Errorf("took %v; want about %v", took, ideal)
			}
			s := v.Stats()
			moved := s.BytesWritten
			if tc.read {
				moved = s.BytesRead
			}
			if moved != size {
				t.Errorf("counted %d bytes, want %d (%+v)", moved, size, s)
			}
		})
	}
}

// TestBuildOperations runs what a realize does to a build directory
// through the volume and checks the backing directory got it.
func TestBuildOperations(t *testing.T) {
	backing := t.TempDir()
	v := netvol.MountT(t, backing, "", netvol.Options{MetaDelay: time.Millisecond})
	at := func(name string) string { return filepath.Join(v.Dir(), name) }
	steps := []struct {
		name string
		do   func() error
	}{
		{"mkdir", func() error { return os.MkdirAll(at("blobs/sha256"), 0o755) }},
		{"write fsync rename", func() error {
			f, err := os.CreateTemp(at("blobs"), ".tmp-*")
			if err != nil {
				return err
			}
			if _, err := f.WriteString("model"); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(f.Name(), at("blobs/sha256/abc"))
		}},
		{"fsync directory", func() error {
			d, err := os.Open(at("blobs/sha256"))
			if err != nil {
				return err
			}
			defer d.Close()
			return d.Sync()
		}},
		{"hard link", func() error { return os.Link(at("blobs/sha256/abc"), at("model.safetensors")) }},
		{"hard link shares the inode", func() error {
			a, err1 := os.Stat(at("blobs/sha256/abc"))
			b, err2 := os.Stat(at("model.safetensors"))
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			if !os.SameFile(a, b) || a.Sys().(*syscall.Stat_t).Nlink != 2 {
				return errors.New("the link is not the same file with two names")
			}
			return nil
		}},
		{"symlink and readlink", func() error {
			if err := os.Symlink("blobs/sha256/abc", at("current")); err != nil {
				return err
			}
			target, err := os.Readlink(at("current"))
			if err != nil || target != "blobs/sha256/abc" {
				return errors.Join(err, errors.New("readlink gave "+target))
			}
			b, err := os.ReadFile(at("current"))
			if err != nil || string(b) != "model" {
				return errors.Join(err, errors.New("reading through the symlink gave "+string(b)))
			}
			return nil
		}},
		{"rename replaces", func() error {
			if err := os.WriteFile(at("marker.tmp"), []byte("v2"), 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(at("marker"), []byte("v1"), 0o644); err != nil {
				return err
			}
			return os.Rename(at("marker.tmp"), at("marker"))
		}},
		{"O_DIRECT", func() error {
			f, err := os.OpenFile(at("direct"), os.O_CREATE|os.O_RDWR|syscall.O_DIRECT, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.Write(make([]byte, 4096)); err != nil {
				return err
			}
			return f.Sync()
		}},
		{"flock on one mount conflicts", func() error {
			a, err1 := os.OpenFile(at("lock"), os.O_CREATE|os.O_RDWR, 0o644)
			b, err2 := os.OpenFile(at("lock"), os.O_RDWR, 0o644)
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			defer a.Close()
			defer b.Close()
			if err := syscall.Flock(int(a.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				return err
			}
			if err := syscall.Flock(int(b.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
				return errors.Join(errors.New("a second flock on the same mount was not refused"), err)
			}
			return nil
		}},
		{"remove", func() error { return os.RemoveAll(at("direct")) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	for name, want := range map[string]string{"blobs/sha256/abc": "model", "model.safetensors": "model", "marker": "v2"} {
		if b, err := os.ReadFile(filepath.Join(backing, name)); err != nil || string(b) != want {
			t.Errorf("backing %s = %q, %v; want %q", name, b, err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(backing, "current")); err != nil || target != "blobs/sha256/abc" {
		t.Errorf("backing symlink = %q, %v", target, err)
	}
	if _, err := os.Lstat(filepath.Join(backing, "direct")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed file still in the backing directory: %v", err)
	}
}

// TestLocksArePerMount: two mounts of one directory are two hosts.
func TestLocksArePerMount(t *testing.T) {
	backing := t.TempDir()
	a := netvol.MountT(t, backing, "", netvol.Options{})
	b := netvol.MountT(t, backing, "", netvol.Options{})
	open := func(v *netvol.Volume) *os.File {
		f, err := os.OpenFile(filepath.Join(v.Dir(), "lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	if err := syscall.Flock(int(open(a).Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		v    *netvol.Volume
		busy bool
	}{
		{"other mount does not see the lock", b, false},
		{"same mount does", a, true},
	} {
		err := syscall.Flock(int(open(tc.v).Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if busy := errors.Is(err, syscall.EWOULDBLOCK); busy != tc.busy || (err != nil && !busy) {
			t.Errorf("%s: flock = %v, want busy %v", tc.name, err, tc.busy)
		}
	}
}

func TestCloseBusyVolume(t *testing.T) {
	backing := t.TempDir()
	dir := t.TempDir()
	v, err := netvol.Mount(context.Background(), backing, dir, netvol.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "open"))
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	defer f.Close()
	if len(mountedAnywhere(t, dir)) == 0 {
		t.Error("the volume is not in /proc/self/mounts while mounted")
	}
	if err := v.Close(); err != nil {
		t.Fatalf("Close of a busy volume: %v", err)
	}
	if m := mountedAnywhere(t, dir); len(m) > 0 {
		t.Errorf("still mounted after Close: %v", m)
	}
	if _, err := f.WriteString("x"); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("write to a file left open on a closed volume: %v, want ENOTCONN", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestMountErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, backing := range []string{filepath.Join(t.TempDir(), "missing"), file} {
		if v, err := netvol.Mount(context.Background(), backing, t.TempDir(), netvol.Options{}); err == nil {
			v.Close()
			t.Errorf("Mount of %s succeeded", backing)
		}
	}
}

// TestThousandStats shows what revalidating every time costs.
func TestThousandStats(t *testing.T) {
	t.Parallel() // seconds of sleeping: let the other tests run meanwhile
	const n, delay = 1000, time.Millisecond
	backing := t.TempDir()
	if err := os.WriteFile(filepath.Join(backing, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v := netvol.MountT(t, backing, "", netvol.Options{MetaDelay: delay})
	p := filepath.Join(v.Dir(), "f")
	start := time.Now()
	for range n {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	took, s := time.Since(start), v.Stats()
	t.Logf("%d stats at %v delay: %v (%v each, %d lookups + %d getattrs)", n, delay, took, took/n, s.Lookups, s.Getattrs)
	if took < n*delay {
		t.Errorf("%d stats took %v, less than %v", n, took, n*delay)
	}
}
