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
		enc, err = zstd.NewWriter(hw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
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
	entries, err := list(ctx, dir, opts)
	if err != nil {
		return st, fmt.Errorf("pack %s: %w", dir, err)
	}
	ra := startReadAhead(ctx, entries)
	defer ra.stop()
	buf := make([]byte, 1<<20)
	for i, e := range entries {
		if err := packEntry(ctx, tw, ra, i, e, buf, &st); err != nil {
			return st, fmt.Errorf("pack %s: %s: %w", dir, e.rel, err)
		}
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

// packEntry writes entry i: its header, and a file's content, read ahead
// (small files) or streamed here (large ones).
func packEntry(ctx context.Context, tw *tar.Writer, ra *readAhead, i int, e *entry, buf []byte, st *Stats) error {
	hdr := &tar.Header{Name: e.rel, Mode: int64(e.mode.Perm()), ModTime: e.mtime.Truncate(time.Second)}
	switch {
	case e.mode.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, e.rel+"/"
	case e.mode&fs.ModeSymlink != 0:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.target
	case e.link:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.rel
		hdr.PAXRecords = map[string]string{linkRecord: "1"}
		st.Links++
	default:
		hdr.Typeflag, hdr.Size = tar.TypeReg, e.size
	}
	var data []byte
	if _, small := ra.slots[i]; small {
		var err error
		if data, err = ra.take(ctx, i); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	st.Entries++
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	if data != nil || e.size == 0 {
		if _, err := tw.Write(data); err != nil {
			return err
		}
	} else if err := copyFile(tw, e.path, e.size, buf); err != nil {
		return err
	}
	st.Files++
	st.Content += e.size
	return nil
}

// copyFile copies exactly size bytes of p into tw: a file that changed
// size since it was listed is an error, not a short or long entry.
func copyFile(tw *tar.Writer, p string, size int64, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(tw, io.LimitReader(f, size+1), buf)
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
