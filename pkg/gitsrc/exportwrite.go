package gitsrc

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/rs/zerolog"
)

// exporter writes one Export: the top tree and its submodules.
type exporter struct {
	ctx  context.Context
	opts ExportOptions
	log  zerolog.Logger

	files, submodules int
	bytes             int64
	// written are the files and directories to sync before the rename.
	written []string
}

// gitlink is a submodule entry met while writing a tree.
type gitlink struct {
	path string // slash path inside its own repository
	hash plumbing.Hash
}

// writeCommit writes commit's tree from repoDir into dir, which exists and
// is empty. prefix is dir's slash path inside the export (for messages and
// for judging symlinks); url is the repository's URL, for its submodules.
func (x *exporter) writeCommit(repoDir string, commit plumbing.Hash, dir, prefix, url string, depth int) error {
	st, err := openStore(repoDir)
	if err != nil {
		return fmt.Errorf("open repository %s: %w", repoDir, err)
	}
	defer st.Close()
	c, err := object.GetCommit(st, commit)
	if err != nil {
		return fmt.Errorf("commit %s in %s: %w", commit, repoDir, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("tree of commit %s: %w", commit, err)
	}
	var links []gitlink
	if err := x.writeTree(st, tree, dir, prefix, "", &links); err != nil {
		return err
	}
	if len(links) == 0 {
		return nil
	}
	return x.fillSubmodules(tree, links, dir, prefix, url, depth)
}

// writeTree writes t's entries into dir. rel is t's path inside its
// repository, prefix the repository's path inside the export.
func (x *exporter) writeTree(st *store, t *object.Tree, dir, prefix, rel string, links *[]gitlink) error {
	for _, e := range t.Entries {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		entryRel := path.Join(rel, e.Name)
		display := path.Join(prefix, entryRel)
		if reason := badName(e.Name); reason != "" {
			return &UnsafePathError{Path: rawJoin(prefix, rel, e.Name), Reason: reason}
		}
		p := filepath.Join(dir, e.Name)
		switch e.Mode {
		case filemode.Dir:
			sub, err := object.GetTree(st, e.Hash)
			if err != nil {
				return fmt.Errorf("%s: %w", display, err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("%s: %w (duplicate entry?)", display, err)
			}
			if err := x.writeTree(st, sub, p, prefix, entryRel, links); err != nil {
				return err
			}
			x.written = append(x.written, p)
		case filemode.Regular, filemode.Deprecated:
			if err := x.writeFile(st, e.Hash, p, 0o644, display); err != nil {
				return err
			}
		case filemode.Executable:
			if err := x.writeFile(st, e.Hash, p, 0o755, display); err != nil {
				return err
			}
		case filemode.Symlink:
			if err := x.writeSymlink(st, e.Hash, p, display); err != nil {
				return err
			}
		case filemode.Submodule:
			// git leaves an empty directory; fillSubmodules fills it.
			if err := os.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("%s: %w (duplicate entry?)", display, err)
			}
			x.written = append(x.written, p)
			*links = append(*links, gitlink{path: entryRel, hash: e.Hash})
		default:
			return fmt.Errorf("%s: unsupported mode %o", display, uint32(e.Mode))
		}
	}
	return nil
}

// rawJoin joins slash path parts without cleaning them, so a refused name
// is reported as the tree holds it.
func rawJoin(parts ...string) string {
	var nonEmpty []string
	for _, p := range parts {
		if p != "" {
			nonEmpty = append(nonEmpty, p)
		}
	}
	return strings.Join(nonEmpty, "/")
}

// badName says why a tree entry name must not be written; "" if it may.
// git refuses these too (verify_path), but go-git does not, and a
// malicious server can send any tree.
func badName(name string) string {
	switch {
	case name == "" || name == "." || name == "..":
		return "the name " + fmt.Sprintf("%q", name) + " is not a file name"
	case strings.ContainsAny(name, "/\x00"):
		return "the name contains a path separator or NUL"
	case strings.EqualFold(name, ".git"):
		return "a .git entry would plant a repository inside the snapshot"
	}
	return ""
}

// writeFile creates p (never an existing file or a link: O_EXCL) with a
// blob's content.
func (x *exporter) writeFile(st *store, h plumbing.Hash, p string, perm os.FileMode, display string) (err error) {
	obj, err := st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return fmt.Errorf("%s: blob %s: %w", display, h, err)
	}
	r, err := obj.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", display, err)
	}
	defer r.Close()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("%s: %w (duplicate entry?)", display, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: %w", display, cerr)
		}
	}()
	n, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("%s: %w", display, err)
	}
	x.written = append(x.written, p)
	x.files++
	x.bytes += n
	return nil
}

// maxLinkTarget is git's own limit on a symlink target (PATH_MAX).
const maxLinkTarget = 4096

func (x *exporter) writeSymlink(st *store, h plumbing.Hash, p, display string) error {
	obj, err := st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return fmt.Errorf("%s: blob %s: %w", display, h, err)
	}
	if obj.Size() > maxLinkTarget {
		return &UnsafePathError{Path: display, Reason: "symlink target is too long"}
	}
	r, err := obj.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", display, err)
	}
	data, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", display, err)
	}
	target := string(data)
	if reason := unsafeLink(display, target); reason != "" {
		switch x.opts.UnsafeSymlinks {
		case SkipUnsafeSymlinks:
			x.log.Warn().Str("path", display).Str("target", target).Str("reason", reason).Msg("skipping unsafe symlink")
			return nil
		case KeepUnsafeSymlinks:
		default:
			return &UnsafePathError{Path: display, Reason: reason + " (target " + fmt.Sprintf("%q", target) + ")"}
		}
	}
	if err := os.Symlink(target, p); err != nil {
		return fmt.Errorf("%s: %w (duplicate entry?)", display, err)
	}
	x.files++
	return nil
}

// unsafeLink says why a symlink at linkPath (slash path in the export) to
// target could lead outside the export; "" when it cannot. Leading ".."
// climb through real directories (a link never has children), so they are
// counted against the link's depth. A ".." after a name is refused: that
// name may itself be a link, and the kernel would climb from its target.
func unsafeLink(linkPath, target string) string {
	switch {
	case target == "":
		return "empty symlink target"
	case strings.ContainsRune(target, 0):
		return "symlink target contains NUL"
	case strings.HasPrefix(target, "/"):
		return "absolute symlink target"
	}
	depth := strings.Count(linkPath, "/") // directories above the link
	named := false
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			if named {
				return "symlink target has '..' after a name"
			}
			depth--
			if depth < 0 {
				return "symlink target leaves the exported tree"
			}
		default:
			named = true
		}
	}
	return ""
}

// syncWorkers bounds the fsyncs in flight: enough to overlap the latency of
// a network volume or batch a journal commit, few enough to stay polite.
const syncWorkers = 16

// syncAll fsyncs the files and directories written, in parallel: one at a
// time costs a round trip per file on a network volume.
func (x *exporter) syncAll(ctx context.Context) error {
	paths := make(chan string)
	errs := make(chan error, syncWorkers)
	var wg sync.WaitGroup
	for range min(syncWorkers, len(x.written)) {
		wg.Go(func() {
			var first error
			for p := range paths {
				if first == nil {
					first = syncPath(p)
				}
			}
			errs <- first
		})
	}
	var err error
feed:
	for _, p := range x.written {
		select {
		case paths <- p:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(paths)
	wg.Wait()
	close(errs)
	for e := range errs {
		if err == nil {
			err = e
		}
	}
	return err
}

// syncPath fsyncs a file or directory; links need none (their target is in
// the directory entry, synced with the directory).
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
