package models

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// Downloads in progress are private to their writer: hosts sharing the
// store take no lock that reaches each other, so two of them downloading
// one model must never write one file. Each download writes
// partial/<key>.<random>.part, with its resume state in
// partial/<key>.<random>.json, and keeps the part file's modification time
// fresh while it lives (a lease). A download that finds an abandoned part
// file of the same key (its lease expired: the writer was killed, or gave
// up) takes it over by renaming it to its own private name, which only one
// process can do, and resumes it; the resumed prefix is hashed again, so
// the whole file's sha256 is what gets checked. A finished file is
// published under its digest by a hard link that fails when the name is
// taken: then the other host's copy wins and this one is removed, so a
// blob that builds already link to is never replaced.

// errClaimed is the cause a download stops with when another process took
// its part file over (its lease had looked expired).
var errClaimed = errors.New("another process took over this partial download")

// partialFiles are one download's part file and resume state.
type partialFiles struct {
	part, meta string
	// adopted is set when part was taken over from an abandoned download.
	adopted bool
}

func (st *Store) partialDir() string { return filepath.Join(st.dir, "partial") }

// claimPartial returns the part file for a download of key: with adopt,
// an abandoned one taken over (the largest, which saves the most), else a
// new empty one under a private name. The part file exists on return.
func (st *Store) claimPartial(key string, adopt bool) (partialFiles, error) {
	mine := filepath.Join(st.partialDir(), key+"."+fsutil.Random())
	pf := partialFiles{part: mine + ".part", meta: mine + ".json"}
	now := time.Now()
	for _, cand := range st.partialsOf(key) {
		if !adopt {
			break
		}
		if !fsutil.Abandoned(cand, st.cfg.Lease.Expiry, now) {
			continue
		}
		if err := os.Rename(cand, pf.part); err != nil {
			continue // taken by another process first
		}
		// The resume state follows its part file; without it the bytes are
		// resumed only when a checksum will judge them.
		_ = os.Rename(strings.TrimSuffix(cand, ".part")+".json", pf.meta)
		// Ours now: a fresh lease, so nobody else takes it.
		_ = fsutil.Touch(pf.part)
		pf.adopted = true
		return pf, nil
	}
	f, err := os.OpenFile(pf.part, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return pf, permanent(fmt.Errorf("create partial download: %w", err))
	}
	return pf, f.Close()
}

// partialsOf lists the part files of key, largest first: this release's
// private ones and an earlier release's shared <key>.part.
func (st *Store) partialsOf(key string) []string {
	entries, err := os.ReadDir(st.partialDir())
	if err != nil {
		return nil
	}
	type cand struct {
		path string
		size int64
	}
	var cands []cand
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".part") || partialKey(name) != key {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			cands = append(cands, cand{filepath.Join(st.partialDir(), name), fi.Size()})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].size > cands[j].size })
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.path
	}
	return out
}

// awaitStall is how long a download another process makes may not grow
// before this one stops waiting for it: a killed writer's lease stays
// fresh for minutes, but its file stops growing at once. A live download
// writes a block (1 MB) at least this often unless its link is slower
// than 200 kB/s, and waiting in vain for it would cost more than
// downloading twice.
const awaitStall = 5 * time.Second

// awaitOthers waits while another process, here or on another host, is
// downloading key: its part file has a fresh lease and keeps growing. It
// returns as soon as done reports the blob is there, or when no download
// of key is alive or one stopped growing for awaitStall (or IdleTimeout,
// if shorter); then this one downloads itself. It reports whether it
// waited. Hosts that start at the same moment all download; the ones that
// come later wait, which on a scale-out saves a model's size per worker.
func (st *Store) awaitOthers(ctx context.Context, key, item string, done func() bool) bool {
	waited := false
	sizes := map[string]int64{}
	grew := time.Now()
	for {
		if waited && done() {
			return true
		}
		now := time.Now()
		live := false
		for _, p := range st.partialsOf(key) {
			fi, err := os.Stat(p)
			if err != nil || fsutil.Abandoned(p, st.cfg.Lease.Expiry, now) {
				continue
			}
			live = true
			if fi.Size() != sizes[p] {
				sizes[p], grew = fi.Size(), now
			}
		}
		if !live && waited {
			return st.awaitRecord(ctx, done)
		}
		if !live || now.Sub(grew) > min(awaitStall, st.cfg.IdleTimeout) {
			return waited
		}
		if !waited {
			st.log.Info().Str("item", item).Msg("another process is downloading this model; waiting for it")
			st.cfg.Progress.Report(progress.Event{Task: "download", Item: item, Unit: "bytes", Message: "waiting for another process"})
		}
		waited = true
		if sleep(ctx, st.cfg.Locks.Poll) != nil {
			return waited
		}
	}
}

// recordGrace is how long a download's part file may be gone before its
// blob is found: the process publishes the blob, removes the part file,
// and only then records the source in the index (a synced write).
const recordGrace = 2 * time.Second

// awaitRecord waits, after the download it waited for ended, for done to
// see the result, so that a waiter does not download again in the moment
// between the part file's removal and the index entry. It reports true
// (the caller looks the blob up, and downloads if the other failed).
func (st *Store) awaitRecord(ctx context.Context, done func() bool) bool {
	for deadline := time.Now().Add(recordGrace); time.Now().Before(deadline); {
		if done() || sleep(ctx, st.cfg.Locks.Poll) != nil {
			break
		}
	}
	return true
}

// partialKey is the download key a file in partial/ belongs to: the part
// of its name before the first dot (keys are "d-<hex>" or "s-<hex>").
func partialKey(name string) string {
	key, _, _ := strings.Cut(name, ".")
	return key
}

// publishBlob gives the verified part file its blob name. The first
// process to publish a digest wins: a link that finds the name taken
// leaves the existing blob (builds may link to it) and drops this copy,
// unless the existing one is damaged (another size). Blobs are read-only:
// a placed hard link shares the inode, and a custom node that writes into
// its model file must not corrupt every build's copy.
func (st *Store) publishBlob(part, digest string, size int64) error {
	dst := st.blobPath(digest)
	if err := os.Chmod(part, 0o444); err != nil {
		return fmt.Errorf("commit blob: %w", err)
	}
	err := os.Link(part, dst)
	if err != nil && !errors.Is(err, fs.ErrExist) && !linkUnsupported(err) {
		return fmt.Errorf("commit blob: %w", err)
	}
	if err != nil {
		if fi, serr := os.Stat(dst); serr == nil && fi.Size() == size {
			st.log.Debug().Str("sha256", digest).Msg("another process stored this model first; using its copy")
		} else if err := os.Rename(part, dst); err != nil {
			return fmt.Errorf("commit blob: %w", err)
		}
	}
	if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("commit blob: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(dst))
}

// linkUnsupported is a file system that has no hard links.
func linkUnsupported(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && (errno == syscall.EPERM || errno == syscall.ENOTSUP || errno == syscall.ENOSYS || errno == syscall.EMLINK)
}

// usedPath is the lease of a blob: refreshed whenever a fetch returns it,
// so gc on any host knows it is in use.
func (st *Store) usedPath(digest string) string { return filepath.Join(st.dir, "used", digest) }

// markUsed refreshes digest's lease, at most once an hour (a stat per
// fetch otherwise). A store it cannot write to (a read-only volume) has
// no gc to fear.
func (st *Store) markUsed(digest string) {
	p := st.usedPath(digest)
	if err := fsutil.TouchIfOlder(p, time.Hour); errors.Is(err, fs.ErrNotExist) {
		_ = os.WriteFile(p, nil, 0o644)
	}
}
