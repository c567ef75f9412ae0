package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// SymlinkPolicy says what Export does with a symlink whose target is
// absolute or climbs out of the exported tree. Such a link would tie a
// build to one machine's layout (builds must survive being mounted
// elsewhere) or expose files outside the build. Export never follows any
// symlink while writing, whatever the policy.
type SymlinkPolicy int

const (
	// RefuseUnsafeSymlinks fails the export with an *UnsafePathError.
	RefuseUnsafeSymlinks SymlinkPolicy = iota
	// SkipUnsafeSymlinks leaves such links out, with a warning.
	SkipUnsafeSymlinks
	// KeepUnsafeSymlinks writes them as stored.
	KeepUnsafeSymlinks
)

// DefaultSubmoduleDepth bounds submodule nesting when
// SubmoduleOptions.MaxDepth is zero.
const DefaultSubmoduleDepth = 8

// Fetcher brings a commit into the cache; *Client is one.
type Fetcher interface {
	Fetch(ctx context.Context, req FetchRequest) (*FetchResult, error)
}

// SubmoduleOptions say how Export fills submodules (gitlink entries).
type SubmoduleOptions struct {
	// Fetcher fetches each submodule's commit. Nil leaves submodules as
	// empty directories, as `git clone` without --recurse-submodules does.
	Fetcher Fetcher
	// CacheDir is the git cache submodules are fetched into.
	CacheDir string
	// URL is the exported repository's URL: relative submodule URLs
	// ("../lib.git") are resolved against it.
	URL string
	// MaxDepth bounds nesting (a submodule's submodules count 2); 0 means
	// DefaultSubmoduleDepth.
	MaxDepth int
	// AllowLocal lets a remote repository's submodules name local
	// repositories (file:// or a path). Off by default, as in git since
	// 2.38: a remote repository must not make the worker copy local files.
	AllowLocal bool
}

// ExportOptions configure Export.
type ExportOptions struct {
	// Logger receives a summary line and warnings; default: none.
	Logger zerolog.Logger
	// UnsafeSymlinks is the policy for absolute and escaping symlinks.
	UnsafeSymlinks SymlinkPolicy
	// Submodules configures submodule checkout.
	Submodules SubmoduleOptions
	// NoSync skips fsync: for throwaway trees, where a crash does not
	// matter. The atomic rename into place happens either way.
	NoSync bool
}

// UnsafePathError says a tree entry was refused: a name that could write
// outside the destination (".." or a separator, from a malicious
// repository), a ".git" entry, or an unsafe symlink.
type UnsafePathError struct {
	// Path is the entry's slash-separated path in the exported tree.
	Path string
	// Reason says what is wrong with it.
	Reason string
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("refusing tree entry %q: %s", e.Path, e.Reason)
}

// Export writes the tree of commit, from the bare repository repoDir, as
// plain files at dest: directories, regular files with their executable
// bit, symlinks as stored, submodules per opts.Submodules. No .git is
// written: the result is an immutable snapshot, not a clone.
//
// The tree is written into a temp directory next to dest, synced, and
// renamed into place; an existing dest is swapped out in one step where
// the system allows (else renamed aside first) and then removed, so dest
// is never a half-written tree. The caller owns dest: whatever is there is
// replaced. Entries that could escape dest are refused (*UnsafePathError).
func Export(ctx context.Context, repoDir, commit, dest string, opts ExportOptions) (err error) {
	h, err := parseCommit(commit)
	if err != nil {
		return fmt.Errorf("export to %s: %w", dest, err)
	}
	if opts.Submodules.MaxDepth == 0 {
		opts.Submodules.MaxDepth = DefaultSubmoduleDepth
	}
	start := time.Now()
	parent, base := filepath.Split(filepath.Clean(dest))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("export %s: %w", commit, err)
	}
	tmp := filepath.Join(parent, "."+base+".tmp-"+fsutil.Random())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("export %s: %w", commit, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("export %s: %w", commit, err)
	}

	x := &exporter{ctx: ctx, opts: opts, log: opts.Logger}
	if err := x.writeCommit(repoDir, h, tmp, "", opts.Submodules.URL, 0); err != nil {
		return fmt.Errorf("export %s to %s: %w", commit, dest, err)
	}
	if !opts.NoSync {
		x.written = append(x.written, tmp)
		if err := x.syncAll(ctx); err != nil {
			return fmt.Errorf("export %s to %s: sync: %w", commit, dest, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("export %s to %s: %w", commit, dest, err)
	}
	if err := replaceDir(tmp, dest); err != nil {
		return fmt.Errorf("export %s: put %s in place: %w", commit, dest, err)
	}
	x.log.Debug().Str("commit", h.String()).Str("dest", dest).Int("files", x.files).Int64("bytes", x.bytes).
		Int("submodules", x.submodules).Int64("elapsed_ms", time.Since(start).Milliseconds()).Msg("exported tree")
	return nil
}

// replaceDir puts the finished tree tmp at dest. When dest exists it is
// exchanged with tmp in one rename where supported (Linux), else moved
// aside first; the old tree is then deleted from its aside name, which
// never follows a symlink: a dest that is a link loses only the link.
func replaceDir(tmp, dest string) error {
	parent := filepath.Dir(dest)
	if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, dest); err != nil {
			return err
		}
		return fsutil.SyncDir(parent)
	}
	if err := exchange(tmp, dest); err == nil {
		if err := fsutil.SyncDir(parent); err != nil {
			return err
		}
		return os.RemoveAll(tmp) // tmp now holds the old tree
	}
	old := filepath.Join(parent, "."+filepath.Base(dest)+".old-"+fsutil.Random())
	if err := os.Rename(dest, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		// Put the old tree back rather than leave dest missing.
		_ = os.Rename(old, dest)
		return err
	}
	if err := fsutil.SyncDir(parent); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// RemoveStaleExports deletes the temp and aside directories that killed
// Exports to dest left next to it. Call it only while holding the lock that
// keeps other Exports to dest away (the build's lock): it cannot tell a
// dead export's temp directory from a running one's.
func RemoveStaleExports(dest string) error {
	parent, base := filepath.Split(filepath.Clean(dest))
	re := regexp.MustCompile(`^\.` + regexp.QuoteMeta(base) + `\.(tmp|old)-[0-9a-f]+$`)
	entries, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if re.MatchString(e.Name()) {
			errs = append(errs, os.RemoveAll(filepath.Join(parent, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// Materialize fetches req's commit (see Fetch) and exports it to dest (see
// Export), with submodules fetched through c into req.CacheDir unless
// opts.Submodules already names a Fetcher.
func (c *Client) Materialize(ctx context.Context, req FetchRequest, dest string, opts ExportOptions) (*FetchResult, error) {
	res, err := c.Fetch(ctx, req)
	if err != nil {
		return nil, err
	}
	if opts.Submodules.Fetcher == nil {
		opts.Submodules.Fetcher = c
	}
	if opts.Submodules.CacheDir == "" {
		opts.Submodules.CacheDir = req.CacheDir
	}
	if opts.Submodules.URL == "" {
		opts.Submodules.URL = req.URL
	}
	if err := Export(ctx, res.RepoDir, res.Commit, dest, opts); err != nil {
		return nil, redactErr(err, req.URL)
	}
	return res, nil
}
