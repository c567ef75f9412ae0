package models

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// Keep names what a collection must leave in the store: blobs by digest,
// and the blobs that sources lead to through the source index (a lock
// whose models have no checksum yet still uses them).
type Keep struct {
	Digests map[string]bool // lowercase hex or "sha256:<hex>"
	Sources []KeepSource
}

// KeepSource is a model source as a spec or lock wrote it; Base resolves a
// relative local path (the spec's directory).
type KeepSource struct {
	Source string
	Base   string
}

// GCOptions tune a collection.
type GCOptions struct {
	// MinAge spares anything written more recently: a realize that has just
	// downloaded a blob may not have recorded it anywhere yet.
	MinAge time.Duration
	// DryRun reports what would go and removes nothing.
	DryRun bool
	Now    time.Time // zero: time.Now()
	// LinkDirs are where models are placed (MODELS_DIR): a hard link or
	// symlink there to an unused blob keeps it, unless RemoveLinks, which
	// removes those links with the blob when they are all its links.
	LinkDirs    []string
	RemoveLinks bool
}

// GCReport says what a collection removed (or would remove).
type GCReport struct {
	Blobs    []GCItem `json:"blobs"`
	Partials []GCItem `json:"partials"`
	// IndexEntries counts source index entries whose blob is gone.
	IndexEntries int   `json:"index_entries"`
	Freed        int64 `json:"freed_bytes"`
	// Kept counts blobs still in use; Linked those unused by any version
	// but hard-linked elsewhere (removing them would free nothing);
	// Recent those younger than MinAge; Busy those a process holds.
	Kept   int `json:"kept"`
	Linked int `json:"linked"`
	Recent int `json:"recent"`
	Busy   int `json:"busy"`
}

// GCItem is one removed file.
type GCItem struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size"`
	// Links are the placed copies removed with the blob (RemoveLinks).
	Links []string `json:"links,omitempty"`
}

// GC removes blobs no version uses, partial downloads nobody resumed for
// MinAge, and index entries of blobs that are gone. It decides by age, not
// by locks, which do not reach other hosts: a blob stays while its last
// use (models/used/<hex>, refreshed by every fetch that returns it) or its
// own time is younger than MinAge, and a partial download while its writer
// keeps its lease fresh. On this host it also skips a blob whose download
// lock another process holds.
func (st *Store) GC(ctx context.Context, keep Keep, o GCOptions) (GCReport, error) {
	var rep GCReport
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	keepSet, err := st.keepSet(keep)
	if err != nil {
		return rep, err
	}
	// MODELS_DIR can hold thousands of files: scan it only once a blob
	// is a candidate.
	links := sync.OnceValues(func() (*placed, error) { return st.placedLinks(o.LinkDirs) })
	gone := map[string]bool{}
	entries, err := os.ReadDir(filepath.Join(st.dir, "sha256"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("model store gc: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		digest := e.Name()
		if len(digest) != 64 || keepSet[digest] {
			rep.Kept++
			continue
		}
		item, why, err := st.collectBlob(digest, o, links)
		if err != nil {
			return rep, err
		}
		switch why {
		case "linked":
			rep.Linked++
		case "recent":
			rep.Recent++
		case "busy":
			rep.Busy++
		case "gone": // removed meanwhile by another collection
		default:
			rep.Blobs = append(rep.Blobs, item)
			rep.Freed += item.Size
			gone[digest] = true
		}
	}
	if rep.IndexEntries, err = st.gcIndex(gone, o.DryRun); err != nil {
		return rep, err
	}
	if rep.Partials, err = st.gcPartials(o); err != nil {
		return rep, err
	}
	for _, p := range rep.Partials {
		rep.Freed += p.Size
	}
	return rep, nil
}

// keepSet turns keep into the digests to leave.
func (st *Store) keepSet(keep Keep) (map[string]bool, error) {
	set := map[string]bool{}
	for d := range keep.Digests {
		if h, err := normalizeDigest(d); err == nil && h != "" {
			set[h] = true
		}
	}
	for _, k := range keep.Sources {
		src, err := ParseSource(k.Source)
		if err != nil {
			continue // a placeholder never produced a blob
		}
		if src.Kind == KindFile && !filepath.IsAbs(src.Path) && k.Base != "" {
			src.Path = filepath.Join(k.Base, src.Path)
		}
		if src, err = st.resolveLocal(src); err != nil {
			return nil, err
		}
		if e, ok := readIndex(st.indexPath(src)); ok {
			set[e.SHA256] = true
		}
	}
	return set, nil
}

// collectBlob removes one unused blob unless it is linked elsewhere,
// recent or being fetched; why says which.
func (st *Store) collectBlob(digest string, o GCOptions, placedLinks func() (*placed, error)) (GCItem, string, error) {
	path := st.blobPath(digest)
	fi, err := os.Lstat(path)
	if err != nil {
		return GCItem{}, "gone", nil
	}
	if o.Now.Sub(fi.ModTime()) < o.MinAge {
		return GCItem{}, "recent", nil
	}
	if used, err := os.Stat(st.usedPath(digest)); err == nil && o.Now.Sub(used.ModTime()) < o.MinAge {
		return GCItem{}, "recent", nil
	}
	item := GCItem{Path: path, SHA256: digest, Size: fi.Size()}
	links, err := placedLinks()
	if err != nil {
		return GCItem{}, "", err
	}
	nlink, ino := linkInfo(fi)
	placedHere := slices.Concat(links.hard[ino], links.soft[digest])
	switch {
	case !o.RemoveLinks && (nlink > 1 || len(placedHere) > 0):
		return GCItem{}, "linked", nil
	case o.RemoveLinks && uint64(len(links.hard[ino]))+1 < nlink:
		return GCItem{}, "linked", nil // a link outside LinkDirs
	}
	if o.RemoveLinks {
		item.Links = placedHere
	}
	if o.DryRun {
		return item, "", nil
	}
	unlock, ok, err := st.cfg.Locks.TryLock(filepath.Join(st.dir, "locks", "d-"+digest+".lock"))
	if err != nil || !ok {
		return GCItem{}, "busy", nil
	}
	defer unlock()
	for _, l := range item.Links {
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return GCItem{}, "", fmt.Errorf("model store gc: %w", err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return GCItem{}, "", fmt.Errorf("model store gc: %w", err)
	}
	os.Remove(st.usedPath(digest))
	return item, "", nil
}

// placed indexes the model files under the link directories: hard links
// by inode, symlinks into the store by digest.
type placed struct {
	hard map[fileID][]string
	soft map[string][]string
}

func (st *Store) placedLinks(dirs []string) (*placed, error) {
	p := &placed{hard: map[fileID][]string{}, soft: map[string][]string{}}
	blobs := filepath.Join(st.dir, "sha256") + string(filepath.Separator)
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				if target, err := filepath.EvalSymlinks(path); err == nil && strings.HasPrefix(target, blobs) {
					p.soft[filepath.Base(target)] = append(p.soft[filepath.Base(target)], path)
				}
			case d.Type().IsRegular():
				if fi, err := d.Info(); err == nil {
					if n, id := linkInfo(fi); n > 1 {
						p.hard[id] = append(p.hard[id], path)
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("model store gc: scan %s: %w", dir, err)
		}
	}
	return p, nil
}

// fileID identifies a file across its hard links.
type fileID struct{ dev, ino uint64 }

// linkInfo returns a file's link count and identity (1 and the zero ID
// where the platform does not say).
func linkInfo(fi fs.FileInfo) (uint64, fileID) {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Nlink), fileID{uint64(sys.Dev), sys.Ino}
	}
	return 1, fileID{}
}

// gcIndex drops index entries whose blob is gone (or, in a dry run, is
// about to go).
func (st *Store) gcIndex(gone map[string]bool, dryRun bool) (int, error) {
	dir := filepath.Join(st.dir, "index")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("model store gc: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if ie, ok := readIndex(p); ok && !gone[ie.SHA256] {
			if _, err := os.Stat(st.blobPath(ie.SHA256)); err == nil {
				continue
			}
		}
		n++
		if !dryRun {
			os.Remove(p)
		}
	}
	return n, nil
}

// gcPartials removes partial downloads (and their resume state) whose
// lease (the part file's modification time, which the writer refreshes)
// is older than MinAge, and resume state left without its part file. On
// this host it also skips those whose download lock is held.
func (st *Store) gcPartials(o GCOptions) ([]GCItem, error) {
	dir := filepath.Join(st.dir, "partial")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model store gc: %w", err)
	}
	var out []GCItem
	// A writer refreshes its lease every Lease.Refresh: whatever MinAge
	// asks, a part file is left alone until its lease could have expired.
	minAge := max(o.MinAge, st.cfg.Lease.Expiry)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || o.Now.Sub(fi.ModTime()) < minAge {
			continue
		}
		base, isPart := strings.CutSuffix(e.Name(), ".part")
		if !isPart {
			// Resume state or a temp file whose part file is gone.
			if meta, ok := strings.CutSuffix(e.Name(), ".json"); (ok && !exists(filepath.Join(dir, meta+".part"))) || fsutil.IsTempName(e.Name()) {
				if !o.DryRun {
					os.Remove(p)
				}
			}
			continue
		}
		if !o.DryRun {
			unlock, ok, err := st.cfg.Locks.TryLock(filepath.Join(st.dir, "locks", partialKey(e.Name())+".lock"))
			if err != nil || !ok {
				continue
			}
			os.Remove(filepath.Join(dir, base+".json"))
			err = os.Remove(p)
			unlock()
			if err != nil {
				continue
			}
		}
		out = append(out, GCItem{Path: p, Size: fi.Size()})
	}
	return out, nil
}
