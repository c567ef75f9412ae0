package gitsrc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
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

// store is an open repository: the shared cache repository, or a fetch's
// private one. Its ref and shallow writes go through a private temp file +
// rename, because go-git truncates those files in place and a killed fetch
// would otherwise leave an empty ref behind.
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
	// The temp file goes to the repository's top: go-git reads every file
	// under refs/ as a ref, and a half-written one there would make the
	// repository look damaged to a reader on another host.
	return fsutil.WriteFileAtomicVia(s.dir, filepath.Join(s.dir, filepath.FromSlash(name)), []byte(ref.Hash().String()+"\n"), 0o644)
}

// CheckAndSetReference ignores old: refs are only ever written into a
// fetch's private repository, or as pins whose content never changes.
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

// removeRefs deletes the refs under prefix (the fallback's temporary refs).
func (s *store) removeRefs(prefix string) error {
	return os.RemoveAll(filepath.Join(s.dir, filepath.FromSlash(prefix)))
}

// packFiles lists objects/pack.
func (s *store) packFiles() map[string]bool {
	entries, _ := os.ReadDir(filepath.Join(s.dir, "objects", "pack"))
	out := make(map[string]bool, len(entries))
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
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

// healthy reports whether every ref file of the store parses and points
// to a readable object: the check that tells a damaged repository (to
// replace) from a failed network fetch (to report). Temp files of ref
// writes (dot files) are skipped: another process may be writing one.
func (s *store) healthy() error {
	return filepath.WalkDir(filepath.Join(s.dir, "refs"), func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		case strings.HasPrefix(d.Name(), "."):
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case d.IsDir():
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		line := strings.TrimSpace(string(data))
		if strings.HasPrefix(line, "ref: ") {
			return nil // symbolic
		}
		if len(line) != 40 || !isHex(line) {
			return fmt.Errorf("ref %s: %q is not a commit", filepath.ToSlash(rel), line)
		}
		if _, err := s.EncodedObject(plumbing.AnyObject, plumbing.NewHash(line)); err != nil {
			return fmt.Errorf("ref %s: %w", filepath.ToSlash(rel), err)
		}
		return nil
	})
}
