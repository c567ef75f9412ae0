package models

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// indexEntry maps one source to the blob it produced. One small JSON file
// per source, replaced atomically, needs no lock to read and cannot be
// corrupted by two writers (they write the same facts).
type indexEntry struct {
	Source    string    `json:"source"` // redacted canonical source
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	FetchedAt time.Time `json:"fetched_at"`
	// For local files: the file's size and mtime when copied. A local file
	// can change in place; then it is copied again.
	FileSize  int64 `json:"file_size,omitempty"`
	FileMTime int64 `json:"file_mtime_ns,omitempty"`
}

func (st *Store) indexPath(src Source) string {
	return filepath.Join(st.dir, "index", hashKey(src.Canonical())+".json")
}

// lookupIndex returns the blob recorded for src when that blob still
// exists with the recorded size. It does no network I/O.
func (st *Store) lookupIndex(src Source) (indexEntry, bool) {
	e, ok := readIndex(st.indexPath(src))
	if !ok {
		return indexEntry{}, false
	}
	if src.Kind == KindFile {
		fi, err := os.Stat(src.Path)
		if err != nil || fi.Size() != e.FileSize || fi.ModTime().UnixNano() != e.FileMTime {
			return indexEntry{}, false
		}
	}
	if !st.blobOK(e.SHA256, e.Size) {
		return indexEntry{}, false
	}
	return e, true
}

// readIndex reads one index entry; false when it is missing or unusable.
func readIndex(path string) (indexEntry, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return indexEntry{}, false
	}
	var e indexEntry
	if json.Unmarshal(data, &e) != nil || len(e.SHA256) != 64 {
		return indexEntry{}, false
	}
	return e, true
}

// blobOK says whether the blob exists with the given size (any size when
// size <= 0). A blob is only ever renamed into place complete, so a size
// mismatch means someone damaged it; it is then fetched again.
func (st *Store) blobOK(digest string, size int64) bool {
	fi, err := os.Stat(st.blobPath(digest))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if size > 0 && fi.Size() != size {
		st.log.Warn().Str("sha256", digest).Int64("want", size).Int64("got", fi.Size()).
			Msg("blob in the model store has the wrong size; fetching it again")
		return false
	}
	return true
}

// writeIndex records src -> digest. For a local file, before is its state
// when the copy started, so a change during the copy is seen next time.
func (st *Store) writeIndex(src Source, digest string, size int64, before os.FileInfo) error {
	e := indexEntry{Source: st.red.string(src.Canonical()), SHA256: digest, Size: size, FetchedAt: time.Now().UTC()}
	if before != nil {
		e.FileSize, e.FileMTime = before.Size(), before.ModTime().UnixNano()
	}
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(st.indexPath(src), data, 0o644); err != nil {
		return fmt.Errorf("write model index: %w", err)
	}
	return nil
}
