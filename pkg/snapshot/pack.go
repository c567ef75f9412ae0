package snapshot

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
)

// PackOptions say what goes into a snapshot.
type PackOptions struct {
	Meta Meta
	// Skip leaves an entry out (a directory with everything below it).
	// rel uses forward slashes.
	Skip func(rel string, d fs.DirEntry) bool
	// Link leaves a regular file on the volume: the snapshot records a link
	// to it instead of its bytes (models).
	Link func(rel string, d fs.DirEntry) bool
	// Plain writes an uncompressed tar: faster to pack and unpack when the
	// volume's bandwidth is not what limits.
	Plain bool
}

// Stats count what a snapshot holds.
type Stats struct {
	Entries int   `json:"entries"`
	Files   int   `json:"files"`
	Links   int   `json:"links"` // files left on the volume
	Content int64 `json:"content_bytes"`
	// Size is the snapshot file's size.
	Size int64 `json:"size"`
}

// Pack writes the snapshot of dir to w: its directories, regular files and
// symbolic links in lexical order, each file with its permissions and
// modification time (Python trusts a .pyc only next to a source of the
// same mtime and size).
func Pack(ctx context.Context, dir string, w io.Writer, opts PackOptions) (Stats, error) {
	var st Stats
	opts.Meta.Format = formatVersion
	if opts.Meta.Source == "" {
		opts.Meta.Source = dir
	}
	hw := &hashWriter{w: w, h: sha256.New()}
	codec := codecZstd
	var payload io.Writer = hw
	var enc *zstd.Encoder
	if opts.Plain {
		codec = codecTar
	} else {
		var err error
		// The fastest level: a build is mostly code and shared objects,
		// which it still shrinks to about a third, and packing stays
		// bound by reading the build, not by the encoder.
		enc, err = zstd.NewWriter(hw, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return st, err
		}
		defer enc.Close()
		payload = enc
	}
	tw := tar.NewWriter(payload)
	meta, err := json.Marshal(opts.Meta)
	if err != nil {
		return st, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: metaName, Mode: 0o644, Size: int64(len(meta)), ModTime: time.Unix(0, 0)}); err != nil {
		return st, err
	}
	if _, err := tw.Write(meta); err != nil {
		return st, err
	}
	st.Entries++
	buf := make([]byte, 1<<20)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == metaName {
			return nil
		}
		if opts.Skip != nil && opts.Skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: rel, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime().Truncate(time.Second)}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case fi.Mode().IsRegular() && opts.Link != nil && opts.Link(rel, d):
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, rel
			hdr.PAXRecords = map[string]string{linkRecord: "1"}
			st.Links++
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		default:
			return nil // sockets, fifos, devices: nothing a build needs
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		st.Entries++
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		if err := copyFile(tw, p, fi.Size(), buf); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		st.Files++
		st.Content += fi.Size()
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return st, err
		}
	}
	f := footer{codec: codec, length: hw.n, content: st.Content, entries: int64(st.Entries)}
	copy(f.sum[:], hw.h.Sum(nil))
	if _, err := w.Write(f.marshal()); err != nil {
		return st, err
	}
	st.Size = hw.n + footerSize
	return st, nil
}

// copyFile copies exactly size bytes of p into tw: a file that changed
// size since it was listed is an error, not a short or long entry.
func copyFile(tw *tar.Writer, p string, size int64, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(tw, io.LimitReader(f, size), buf)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("changed while packed (%d bytes, listed with %d)", n, size)
	}
	return nil
}

// hashWriter hashes and counts what it passes on.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}
