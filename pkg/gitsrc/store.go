package gitsrc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// pinPrefix holds one ref per fetched commit, so the objects a build needs
// stay referenced: a `git gc` run by anyone in the cache never drops them.
const pinPrefix = "refs/pins/"

// RepoDir returns the bare repository that caches rawURL's objects under
// cacheDir: <cacheDir>/<RepoKey(rawURL)>.git.
func RepoDir(cacheDir, rawURL string) (string, error) {
	key, err := RepoKey(rawURL)
	if err != nil {
		return "", err
	}
	return filepath.Join(cacheDir, filepath.FromSlash(key)+".git"), nil
}

// store is an open cache repository. Its ref and shallow writes go through
// temp file + rename, because go-git truncates those files in place and a
// killed fetch would otherwise leave an empty ref behind.
type store struct {
	*filesystem.Storage
	dir string
}

// openStore opens the bare repository at dir for reading and writing.
func openStore(dir string) (*store, error) {
	fi, err := os.Stat(filepath.Join(dir, "objects"))
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: objects is not a directory", dir)
	}
	st := filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(),
		filesystem.Options{KeepDescriptors: true})
	if _, err := st.Config(); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("read config of %s: %w", dir, err)
	}
	return &store{Storage: st, dir: dir}, nil
}

// SetReference writes hash refs atomically; symbolic refs (only HEAD, which
// init writes) go through go-git.
func (s *store) SetReference(ref *plumbing.Reference) error {
	if ref.Type() != plumbing.HashReference {
		return s.Storage.SetReference(ref)
	}
	name := ref.Name().String()
	if !strings.HasPrefix(name, "refs/") || strings.Contains(name, "..") || strings.Contains(name, "/.") {
		return fmt.Errorf("refusing to write ref %q", name)
	}
	return fsutil.WriteFileAtomic(filepath.Join(s.dir, filepath.FromSlash(name)), []byte(ref.Hash().String()+"\n"), 0o644)
}

// CheckAndSetReference ignores old: the caller holds the repository's lock,
// so nobody else moves refs underneath.
func (s *store) CheckAndSetReference(ref, _ *plumbing.Reference) error {
	return s.SetReference(ref)
}

// SetShallow replaces the shallow file atomically.
func (s *store) SetShallow(commits []plumbing.Hash) error {
	path := filepath.Join(s.dir, "shallow")
	if len(commits) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	var b strings.Builder
	for _, h := range commits {
		b.WriteString(h.String())
		b.WriteByte('\n')
	}
	return fsutil.WriteFileAtomic(path, []byte(b.String()), 0o644)
}

// pin records commit under refs/pins/.
func (s *store) pin(commit plumbing.Hash) error {
	return s.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(pinPrefix+commit.String()), commit))
}

// pinned reports whether commit's pin ref exists and names it.
func (s *store) pinned(commit plumbing.Hash) bool {
	data, err := os.ReadFile(filepath.Join(s.dir, "refs", "pins", commit.String()))
	return err == nil && strings.TrimSpace(string(data)) == commit.String()
}

// pruneShallow drops shallow entries whose parents have all arrived since
// (go-git adds new boundaries on a deeper fetch but never removes old ones),
// so later fetches do not ask the server to resend history we hold.
func (s *store) pruneShallow() error {
	shallows, err := s.Shallow()
	if err != nil || len(shallows) == 0 {
		return err
	}
	keep := shallows[:0:0]
	for _, h := range shallows {
		c, err := object.GetCommit(s, h)
		if err != nil {
			keep = append(keep, h)
			continue
		}
		for _, p := range c.ParentHashes {
			if s.HasEncodedObject(p) != nil {
				keep = append(keep, h)
				break
			}
		}
	}
	if len(keep) == len(shallows) {
		return nil
	}
	return s.SetShallow(keep)
}

// removeRefs deletes the refs under prefix (the fallback's temporary refs).
func (s *store) removeRefs(prefix string) error {
	return os.RemoveAll(filepath.Join(s.dir, filepath.FromSlash(prefix)))
}

// packFiles lists objects/pack, so the files a fetch adds can be synced.
func (s *store) packFiles() map[string]bool {
	entries, _ := os.ReadDir(filepath.Join(s.dir, "objects", "pack"))
	out := make(map[string]bool, len(entries))
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// syncNewPacks fsyncs the pack files that are not in before, then the pack
// directory: go-git renames packs into place without syncing them.
func (s *store) syncNewPacks(before map[string]bool) error {
	dir := filepath.Join(s.dir, "objects", "pack")
	for name := range s.packFiles() {
		if before[name] {
			continue
		}
		if err := syncFile(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return fsutil.SyncDir(dir)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// hasCommit reports whether commit and everything its tree needs are in the
// store.
func (s *store) hasCommit(commit plumbing.Hash) bool {
	return s.verify(commit) == nil
}

// verify checks that commit is a commit whose whole tree (trees and blobs;
// submodules live in their own repositories) is present.
func (s *store) verify(commit plumbing.Hash) error {
	c, err := object.GetCommit(s, commit)
	if err != nil {
		return fmt.Errorf("commit %s: %w", commit, err)
	}
	return s.verifyTree(c.TreeHash)
}

func (s *store) verifyTree(h plumbing.Hash) error {
	t, err := object.GetTree(s, h)
	if err != nil {
		return fmt.Errorf("tree %s: %w", h, err)
	}
	for _, e := range t.Entries {
		switch e.Mode {
		case filemode.Dir:
			if err := s.verifyTree(e.Hash); err != nil {
				return err
			}
		case filemode.Submodule:
		default:
			if err := s.HasEncodedObject(e.Hash); err != nil {
				return fmt.Errorf("blob %s (%s): %w", e.Hash, e.Name, err)
			}
		}
	}
	return nil
}

// healthy reports whether every ref of the store parses and points to a
// readable object: the check that tells a corrupt repository (to rebuild)
// from a failed network fetch (to report).
func (s *store) healthy() error {
	iter, err := s.IterReferences()
	if err != nil {
		return err
	}
	defer iter.Close()
	return iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference {
			return nil
		}
		if _, err := s.EncodedObject(plumbing.AnyObject, ref.Hash()); err != nil {
			return fmt.Errorf("ref %s: %w", ref.Name(), err)
		}
		return nil
	})
}

// tempSibling matches the temp and old directories initRepo and replaceRepo
// create next to a repository. The random part is decimal digits, so it
// never ends in ".git" and cannot match another repository's directory.
func tempSibling(base string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `\.(tmp|old)-[0-9]+$`)
}

// cleanStale removes what killed fetches leave behind: go-git's temp packs,
// an index whose pack never arrived (go-git writes the .idx first, and
// would trust a half-written one if the same pack came again), our temp
// files, and temp repositories next to dir. Only call it holding the lock.
func cleanStale(dir string) {
	packDir := filepath.Join(dir, "objects", "pack")
	if entries, err := os.ReadDir(packDir); err == nil {
		have := map[string]bool{}
		for _, e := range entries {
			have[e.Name()] = true
		}
		for _, e := range entries {
			n := e.Name()
			stale := strings.HasPrefix(n, "tmp_pack_") || strings.HasPrefix(n, ".") ||
				(strings.HasSuffix(n, ".idx") && !have[strings.TrimSuffix(n, ".idx")+".pack"])
			if stale {
				_ = os.Remove(filepath.Join(packDir, n))
			}
		}
	}
	_ = filepath.WalkDir(filepath.Join(dir, "refs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".tmp-") {
			_ = os.Remove(p)
		}
		return nil
	})
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".shallow.tmp-") {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	parent, base := filepath.Split(dir)
	re := tempSibling(base)
	if entries, err := os.ReadDir(parent); err == nil {
		for _, e := range entries {
			if re.MatchString(e.Name()) {
				_ = os.RemoveAll(filepath.Join(parent, e.Name()))
			}
		}
	}
}

// initRepo creates an empty bare repository in a temp directory next to dir
// and returns its path; the caller fills it and renames it into place, so
// a repository directory is never seen half-initialised.
func initRepo(dir string) (string, error) {
	parent, base := filepath.Split(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, base+".tmp-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	if _, err := git.PlainInit(tmp, true); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("init bare repository: %w", err)
	}
	return tmp, nil
}

// installRepo renames the prepared repository tmp to dir, moving whatever is
// at dir aside first and deleting it afterwards. Only call it holding the
// lock.
func installRepo(tmp, dir string) error {
	parent, base := filepath.Split(dir)
	if _, err := os.Lstat(dir); err == nil {
		old, err := os.MkdirTemp(parent, base+".old-")
		if err != nil {
			return err
		}
		// MkdirTemp only picked a free name: os.Rename will not replace a
		// directory, and nobody else makes one of that pattern here.
		if err := os.Remove(old); err != nil {
			return err
		}
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("move corrupt repository aside: %w", err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return fsutil.SyncDir(parent)
}
