package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// The cache repository of a remote is shared by every host on the volume,
// and no lock is trusted to reach them all. So nothing is ever fetched
// into it: a fetch fills a private repository next to it, and only
// finished, content-named files move into the shared one, each by one
// rename:
//
//  1. each pack's .idx, then its .pack: go-git finds packs by their .pack
//     file (git by the .idx, but it skips an index without its pack), so
//     no reader ever opens a pack without its index;
//  2. loose objects, if the fetch left any;
//  3. the pin refs/pins/<sha>, written to a private name and renamed, once
//     every object it needs is in place.
//
// Pack names are the hash of their content, so two hosts publishing the
// same pack publish the same bytes. Nothing in the shared repository is
// ever rewritten: no packed-refs, no shallow file (a fetch starts from an
// empty private repository, so the shared one never negotiates), no
// repacking. A repository that does not exist yet is the private one
// renamed into place; the loser of that race publishes into the winner's.

// privateRepo creates an empty bare repository under a private name next
// to dir (dir.tmp-<random>) and opens it. Its lease is the directory's
// modification time: keep it fresh with fsutil.Heartbeat while filling it.
func privateRepo(dir string) (string, *store, error) {
	parent, base := filepath.Split(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", nil, err
	}
	tmp := filepath.Join(parent, base+".tmp-"+fsutil.Random())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", nil, err
	}
	if _, err := git.PlainInit(tmp, true); err != nil {
		_ = os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("init bare repository: %w", err)
	}
	st, err := openStore(tmp)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", nil, err
	}
	return tmp, st, nil
}

// publish moves what the private repository tmp holds into the shared
// repository dir and pins commit there (none when commit is zero). When
// dir is missing, tmp becomes it; when dir is unreadable (damaged by hand
// or by an earlier release), it is moved aside and replaced. tmp is gone
// afterwards, whatever happened. replaced reports a replacement.
func publish(tmp, dir string, commit plumbing.Hash) (replaced bool, err error) {
	defer os.RemoveAll(tmp)
	// The shared repository records no shallow boundaries (see above).
	if err := os.Remove(filepath.Join(tmp, "shallow")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	_, statErr := os.Lstat(dir)
	reason := unusable(dir)
	if reason != nil && statErr == nil {
		// Another host may be in the middle of something that looks odd
		// for a moment: only a repository still unusable a little later
		// is taken for damaged.
		time.Sleep(damagedRecheck)
		reason = unusable(dir)
	}
	if reason != nil {
		if statErr == nil {
			replaced = true
			if err := moveAside(dir); err != nil {
				return false, fmt.Errorf("move the damaged repository %s aside: %w", dir, err)
			}
		}
		if err := os.Rename(tmp, dir); err == nil {
			return replaced, fsutil.SyncDir(filepath.Dir(dir))
		}
		// Another process put a repository there first: add to it.
	}
	if err := publishObjects(tmp, dir); err != nil {
		return replaced, err
	}
	if commit.IsZero() {
		return replaced, nil
	}
	st, err := openStore(dir)
	if err != nil {
		return replaced, err
	}
	defer st.Close()
	return replaced, st.pin(commit)
}

// damagedRecheck is how long publish waits before it checks again a
// repository that looked damaged.
var damagedRecheck = 500 * time.Millisecond

// unusable says why dir cannot take more objects (it is not there yet,
// or damaged), or nil.
func unusable(dir string) error {
	st, err := openStore(dir)
	if err != nil {
		return fmt.Errorf("unreadable: %w", err)
	}
	defer st.Close()
	return st.healthy()
}

// publishObjects moves tmp's packs and loose objects into dir (see the
// order above) and syncs the directories they went to.
func publishObjects(tmp, dir string) error {
	from, to := filepath.Join(tmp, "objects"), filepath.Join(dir, "objects")
	packs, err := os.ReadDir(filepath.Join(from, "pack"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Join(to, "pack"), 0o755); err != nil {
		return err
	}
	for _, e := range packs {
		name, ok := strings.CutSuffix(e.Name(), ".pack")
		if !ok || !strings.HasPrefix(name, "pack-") {
			continue
		}
		for _, ext := range []string{".idx", ".rev", ".pack"} {
			src := filepath.Join(from, "pack", name+ext)
			if ext == ".rev" && !exists(src) {
				continue
			}
			if err := syncFile(src); err != nil {
				return err
			}
			if err := os.Rename(src, filepath.Join(to, "pack", name+ext)); err != nil {
				return fmt.Errorf("publish %s: %w", name+ext, err)
			}
		}
	}
	if err := fsutil.SyncDir(filepath.Join(to, "pack")); err != nil {
		return err
	}
	return publishLoose(from, to)
}

// publishLoose moves loose objects (objects/xx/<38 hex>), which go-git
// writes only in rare cases; their names are their content's hash too.
func publishLoose(from, to string) error {
	dirs, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 || !isHex(d.Name()) {
			continue
		}
		objs, err := os.ReadDir(filepath.Join(from, d.Name()))
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			continue
		}
		if err := os.MkdirAll(filepath.Join(to, d.Name()), 0o755); err != nil {
			return err
		}
		for _, o := range objs {
			src := filepath.Join(from, d.Name(), o.Name())
			if err := syncFile(src); err != nil {
				return err
			}
			if err := os.Rename(src, filepath.Join(to, d.Name(), o.Name())); err != nil {
				return err
			}
		}
		if err := fsutil.SyncDir(filepath.Join(to, d.Name())); err != nil {
			return err
		}
	}
	return nil
}

// moveAside renames dir to a private name and deletes it there: readers
// that already opened its files keep them, and none opens it half-deleted.
func moveAside(dir string) error {
	aside := dir + ".old-" + fsutil.Random()
	if err := os.Rename(dir, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // another process moved it first
		}
		return err
	}
	return os.RemoveAll(aside)
}

// tempSibling matches the private and aside directories made next to a
// repository. The random part is hex, so it never ends in ".git" and
// cannot match another repository's directory.
func tempSibling(base string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `\.(tmp|old|pruned)-[0-9a-f]+$`)
}

// cleanStale removes what killed processes left behind once their lease
// expired: private repositories and aside copies next to dir, and, inside
// dir, temp files of ref writes and what earlier releases, which fetched
// into the shared repository, left (go-git's temp packs, an index whose
// pack never arrived). A fresh entry may belong to a process on another
// host that is still writing it, so it stays.
func cleanStale(dir string, expiry time.Duration) {
	now := time.Now()
	stale := func(p string) bool { return fsutil.Abandoned(p, expiry, now) }
	packDir := filepath.Join(dir, "objects", "pack")
	if entries, err := os.ReadDir(packDir); err == nil {
		have := map[string]bool{}
		for _, e := range entries {
			have[e.Name()] = true
		}
		for _, e := range entries {
			n := e.Name()
			leftover := strings.HasPrefix(n, "tmp_pack_") || strings.HasPrefix(n, "tmp_idx_") || strings.HasPrefix(n, ".") ||
				(strings.HasSuffix(n, ".idx") && !have[strings.TrimSuffix(n, ".idx")+".pack"])
			if p := filepath.Join(packDir, n); leftover && stale(p) {
				_ = os.Remove(p)
			}
		}
	}
	_ = filepath.WalkDir(filepath.Join(dir, "refs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && fsutil.IsTempName(d.Name()) && stale(p) {
			_ = os.Remove(p)
		}
		return nil
	})
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if p := filepath.Join(dir, e.Name()); fsutil.IsTempName(e.Name()) && stale(p) {
				_ = os.Remove(p)
			}
		}
	}
	parent, base := filepath.Split(dir)
	re := tempSibling(base)
	if entries, err := os.ReadDir(parent); err == nil {
		for _, e := range entries {
			if p := filepath.Join(parent, e.Name()); re.MatchString(e.Name()) && stale(p) {
				_ = os.RemoveAll(p)
			}
		}
	}
}

// fetchPrivately runs fetch on a new private repository next to dir,
// keeping its lease fresh, then publishes the result into dir with commit
// pinned (see publish). The private repository is removed on failure.
func (c *Client) fetchPrivately(ctx context.Context, dir string, commit plumbing.Hash, fetch func(st *store) error) (replaced bool, err error) {
	tmp, st, err := privateRepo(dir)
	if err != nil {
		return false, err
	}
	stop := fsutil.Heartbeat(ctx, tmp, c.lease.Refresh, nil)
	err = fetch(st)
	_ = st.removeRefs("refs/fetch/")
	if err == nil && !commit.IsZero() {
		// The pin inside tmp too: when tmp becomes the shared repository,
		// it arrives pinned.
		err = st.pin(commit)
	}
	_ = st.Close()
	stop()
	if err != nil {
		_ = os.RemoveAll(tmp)
		return false, err
	}
	return publish(tmp, dir, commit)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
