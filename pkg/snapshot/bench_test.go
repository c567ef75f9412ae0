package snapshot

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/netvol"
)

// genTree writes a build-like tree: files Python modules of a few KB in
// directories of 20, and one incompressible 16 MiB "shared object".
func genTree(b testing.TB, dir string, files int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("pkg%03d/sub%02d/mod%05d.py", i/400, i/20%20, i))
		if i%20 == 0 {
			must(b, os.MkdirAll(filepath.Dir(p), 0o755))
		}
		var sb strings.Builder
		for j := range 40 + rng.IntN(120) {
			fmt.Fprintf(&sb, "def f%d_%d(x):\n    return x * %d + %q\n", i, j, rng.IntN(1000), fmt.Sprint(rng.Uint64()))
		}
		must(b, os.WriteFile(p, []byte(sb.String()), 0o644))
	}
	blob := make([]byte, 16<<20)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	must(b, os.WriteFile(filepath.Join(dir, "lib.so"), blob, 0o755))
}

// BenchmarkUnpack times unpacking a snapshot of 8,000 files from local disk
// and from a simulated network volume (1 ms per metadata operation, and a
// bandwidth cap), plain and compressed.
func BenchmarkUnpack(b *testing.B) {
	root := b.TempDir()
	build := filepath.Join(root, "build")
	genTree(b, build, 8000)
	vol := netvol.MountT(b, root, "", netvol.Options{MetaDelay: time.Millisecond})
	capped := netvol.MountT(b, root, "", netvol.Options{MetaDelay: time.Millisecond, ReadBandwidth: 200 << 20})
	for _, plain := range []bool{true, false} {
		name := map[bool]string{true: "plain", false: "zstd"}[plain]
		snap := filepath.Join(root, name+".snap")
		t0 := time.Now()
		st, _, err := Publish(context.Background(), build, snap, PackOptions{Meta: Meta{Key: name}, Plain: plain})
		must(b, err)
		b.Logf("%s: packed %d files, %d MiB -> %d MiB in %v", name, st.Files, st.Content>>20, st.Size>>20, time.Since(t0))
		for _, where := range []struct{ name, dir string }{{"local", root}, {"netvol-1ms", vol.Dir()}, {"netvol-1ms-200MBps", capped.Dir()}} {
			b.Run(name+"/"+where.name, func(b *testing.B) {
				for b.Loop() {
					dest := filepath.Join(b.TempDir(), "copy")
					must(b, os.Mkdir(dest, 0o755))
					if _, _, err := UnpackFile(context.Background(), filepath.Join(where.dir, name+".snap"), dest, UnpackOptions{Key: name}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPack times packing the 8,000-file tree from local disk and
// from a simulated network volume with 1 ms per metadata operation, which
// a sequential walk would pay about four times per file.
func BenchmarkPack(b *testing.B) {
	root := b.TempDir()
	build := filepath.Join(root, "build")
	genTree(b, build, 8000)
	vol := netvol.MountT(b, root, "", netvol.Options{MetaDelay: time.Millisecond})
	for _, where := range []struct{ name, dir string }{{"local", build}, {"netvol-1ms", filepath.Join(vol.Dir(), "build")}} {
		b.Run(where.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Pack(context.Background(), where.dir, io.Discard, PackOptions{Meta: Meta{Key: "k"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
