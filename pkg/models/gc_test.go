package models

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

func TestGC(t *testing.T) {
	for _, dryRun := range []bool{true, false} {
		t.Run(map[bool]string{true: "dry run", false: "for real"}[dryRun], func(t *testing.T) {
			env := newTestStore(t, nil)
			st, ctx := env.st, context.Background()
			src := t.TempDir()
			old := time.Now().Add(-48 * time.Hour)
			blobs := map[string]Blob{}
			for i, name := range []string{"by-digest", "by-source", "unused", "recent", "linked", "busy", "placed", "symlinked"} {
				data, _ := testData(1000+i, uint64(i+1))
				p := filepath.Join(src, name+".safetensors")
				os.WriteFile(p, data, 0o644)
				b, err := st.Fetch(ctx, Request{Source: p})
				if err != nil {
					t.Fatal(err)
				}
				if name != "recent" {
					os.Chtimes(b.Path, old, old)
					os.Chtimes(st.usedPath(b.SHA256), old, old) // last used long ago
				}
				blobs[name] = b
			}
			// A build elsewhere holds a hard link to "linked".
			if err := os.Link(blobs["linked"].Path, filepath.Join(t.TempDir(), "model.safetensors")); err != nil {
				t.Skipf("no hard links here: %v", err)
			}
			// MODELS_DIR holds a hard link to "placed" and a symlink to
			// "symlinked".
			modelsDir := t.TempDir()
			os.MkdirAll(filepath.Join(modelsDir, "checkpoints"), 0o755)
			os.Link(blobs["placed"].Path, filepath.Join(modelsDir, "checkpoints", "placed.safetensors"))
			os.Symlink(blobs["symlinked"].Path, filepath.Join(modelsDir, "checkpoints", "symlinked.safetensors"))
			// Another process is fetching "busy".
			lk := flock.New(filepath.Join(st.Dir(), "locks", "d-"+blobs["busy"].SHA256+".lock"))
			if ok, err := lk.TryLock(); err != nil || !ok {
				t.Fatal("lock", err)
			}
			defer lk.Unlock()
			// An abandoned partial download, and one being written.
			for name, mtime := range map[string]time.Time{"s-abandoned": old, "s-active": time.Now()} {
				p := filepath.Join(st.Dir(), "partial", name+".part")
				os.WriteFile(p, make([]byte, 500), 0o644)
				os.WriteFile(filepath.Join(st.Dir(), "partial", name+".json"), []byte(`{}`), 0o644)
				os.Chtimes(p, mtime, mtime)
			}

			keep := Keep{
				Digests: map[string]bool{"sha256:" + blobs["by-digest"].SHA256: true},
				Sources: []KeepSource{{Source: "by-source.safetensors", Base: src}, {Source: "hf://..."}},
			}
			rep, err := st.GC(ctx, keep, GCOptions{MinAge: 24 * time.Hour, DryRun: dryRun, LinkDirs: []string{modelsDir}})
			if err != nil {
				t.Fatal(err)
			}
			wantBlobs := 2 // unused, busy (a dry run takes no lock)
			if !dryRun {
				wantBlobs = 1
			}
			var unused *GCItem
			for i := range rep.Blobs {
				if rep.Blobs[i].SHA256 == blobs["unused"].SHA256 {
					unused = &rep.Blobs[i]
				}
			}
			if len(rep.Blobs) != wantBlobs || unused == nil || rep.Kept != 2 || rep.Linked != 3 || rep.Recent != 1 ||
				len(rep.Partials) != 1 || filepath.Base(rep.Partials[0].Path) != "s-abandoned.part" || rep.IndexEntries != wantBlobs {
				t.Fatalf("report %+v", rep)
			}
			if !dryRun && rep.Busy != 1 {
				t.Errorf("busy = %d, want the blob being fetched left alone", rep.Busy)
			}
			if want := unused.Size + 500; !dryRun && rep.Freed != want {
				t.Errorf("freed %d, want %d", rep.Freed, want)
			}
			for name, b := range blobs {
				_, err := os.Stat(b.Path)
				if gone := name == "unused" && !dryRun; gone != os.IsNotExist(err) {
					t.Errorf("%s: stat after gc: %v", name, err)
				}
			}
			_, err = os.Stat(filepath.Join(st.Dir(), "partial", "s-abandoned.part"))
			if dryRun == os.IsNotExist(err) {
				t.Errorf("abandoned partial after gc: %v", err)
			}
			if _, err := os.Stat(filepath.Join(st.Dir(), "partial", "s-active.part")); err != nil {
				t.Errorf("the active partial was removed: %v", err)
			}
			if dryRun {
				return
			}
			// Asked to, gc removes unused models placed in MODELS_DIR with
			// their links there, and never a blob linked from elsewhere.
			rep, err = st.GC(ctx, keep, GCOptions{MinAge: 24 * time.Hour, LinkDirs: []string{modelsDir}, RemoveLinks: true})
			if err != nil || len(rep.Blobs) != 2 || rep.Linked != 1 {
				t.Fatalf("removing links: %+v, %v", rep, err)
			}
			for _, name := range []string{"placed", "symlinked"} {
				if _, err := os.Lstat(filepath.Join(modelsDir, "checkpoints", name+".safetensors")); !os.IsNotExist(err) {
					t.Errorf("%s: link left in MODELS_DIR: %v", name, err)
				}
				if _, err := os.Stat(blobs[name].Path); !os.IsNotExist(err) {
					t.Errorf("%s: blob left: %v", name, err)
				}
			}
			// The removed model is fetched again from its source; the kept
			// ones are still hits.
			b, err := st.Fetch(ctx, Request{Source: filepath.Join(src, "unused.safetensors")})
			if err != nil || !b.Downloaded {
				t.Errorf("refetch of the collected model: %+v, %v", b, err)
			}
			if b, err := st.Fetch(ctx, Request{Source: filepath.Join(src, "by-source.safetensors")}); err != nil || b.Downloaded {
				t.Errorf("kept model: %+v, %v", b, err)
			}
		})
	}
}
