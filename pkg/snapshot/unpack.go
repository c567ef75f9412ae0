package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// UnpackOptions say what a snapshot must be and where its links lead.
type UnpackOptions struct {
	// Key is the build key the snapshot must carry.
	Key string
	// Source is the build on the volume, as mounted here: links to files
	// left on the volume and relative links that leave the build point
	// into it.
	Source string
}

// UnpackFile unpacks the snapshot at path into dest, an empty directory.
// The footer is checked before anything is written, the digest once the
// stream ends: on a *CorruptError dest holds a partial tree that the
// caller must discard.
func UnpackFile(ctx context.Context, path, dest string, opts UnpackOptions) (Meta, Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, Stats{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Meta{}, Stats{}, err
	}
	if _, err := readFooter(f, fi.Size()); err != nil {
		return Meta{}, Stats{}, &CorruptError{Path: path, Reason: err.Error()}
	}
	meta, st, err := Unpack(ctx, f, dest, opts)
	var ce *CorruptError
	if errors.As(err, &ce) && ce.Path == "" {
		ce.Path = path
	}
	return meta, st, err
}

// Unpack reads a whole snapshot (payload and footer) from r into dest, an
// empty directory, verifying it as it goes.
func Unpack(ctx context.Context, r io.Reader, dest string, opts UnpackOptions) (Meta, Stats, error) {
	var st Stats
	tr := &tailReader{r: r, buf: make([]byte, 1<<20+footerSize)}
	hr := &hashReader{r: tr, h: sha256.New()}
	br := bufio.NewReaderSize(hr, 1<<20)
	var payload io.Reader = br
	head, err := br.Peek(len(zstdMagic))
	if err != nil {
		return Meta{}, st, corrupt("empty or truncated payload: %v", err)
	}
	codec := codecTar
	if bytes.Equal(head, zstdMagic) {
		codec = codecZstd
		// The footer's sha256 covers the compressed payload: zstd's own
		// checksum of what it decodes would only repeat the check.
		dec, err := zstd.NewReader(br, zstd.IgnoreChecksum(true))
		if err != nil {
			return Meta{}, st, err
		}
		defer dec.Close()
		payload = dec
	}
	u := &unpacker{dest: dest, opts: opts, links: map[string]bool{}, buf: make([]byte, 1<<20), w: newWriters()}
	meta, err := u.run(ctx, tar.NewReader(payload), &st)
	if werr := u.w.close(); err == nil {
		err = werr
	}
	if err != nil {
		return meta, st, err
	}
	// The digest covers every payload byte, also those after the tar's
	// end that the readers above did not need.
	if _, err := io.Copy(io.Discard, payload); err != nil {
		return meta, st, corrupt("after the last entry: %v", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return meta, st, err
	}
	f, err := parseFooter(tr.tail)
	switch {
	case err != nil:
		return meta, st, corrupt("%v", err)
	case f.codec != codec:
		return meta, st, corrupt("footer names codec %d, payload is %d", f.codec, codec)
	case f.length != hr.n:
		return meta, st, corrupt("payload of %d bytes, footer says %d", hr.n, f.length)
	case !bytes.Equal(f.sum[:], hr.h.Sum(nil)):
		return meta, st, corrupt("sha256 of the payload does not match its footer")
	case f.entries != int64(st.Entries) || f.content != st.Content:
		return meta, st, corrupt("%d entries and %d bytes unpacked, footer says %d and %d", st.Entries, st.Content, f.entries, f.content)
	}
	st.Size = hr.n + footerSize
	return meta, st, nil
}

// unpacker writes one snapshot's entries.
type unpacker struct {
	dest  string
	opts  UnpackOptions
	links map[string]bool // symlinks made: nothing may be written through one
	buf   []byte
	w     *writers
}

func (u *unpacker) run(ctx context.Context, tr *tar.Reader, st *Stats) (Meta, error) {
	var meta Meta
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if i == 0 {
				return meta, corrupt("no entries")
			}
			return meta, nil
		}
		if err != nil {
			return meta, corrupt("entry %d: %v", i, err)
		}
		if err := ctx.Err(); err != nil {
			return meta, err
		}
		st.Entries++
		if i == 0 {
			if meta, err = u.meta(hdr, tr); err != nil {
				return meta, err
			}
			continue
		}
		if err := u.entry(hdr, tr, st); err != nil {
			return meta, err
		}
	}
}

func (u *unpacker) meta(hdr *tar.Header, tr *tar.Reader) (Meta, error) {
	var meta Meta
	if hdr.Name != metaName || hdr.Size > 1<<20 {
		return meta, corrupt("first entry is %q, not %s", hdr.Name, metaName)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return meta, corrupt("%s: %v", metaName, err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return meta, corrupt("%s: %v", metaName, err)
	}
	if meta.Format != formatVersion {
		return meta, corrupt("format %d; this worker reads format %d", meta.Format, formatVersion)
	}
	if u.opts.Key != "" && meta.Key != u.opts.Key {
		return meta, corrupt("it is the snapshot of build %s, not %s", meta.Key, u.opts.Key)
	}
	return meta, nil
}

// entry writes one entry. Names are checked to stay inside dest, and not
// to pass through a link the snapshot made: the volume is shared, and a
// damaged or crafted snapshot must not write anywhere else.
func (u *unpacker) entry(hdr *tar.Header, tr *tar.Reader, st *Stats) error {
	name := strings.TrimSuffix(hdr.Name, "/")
	if name == "" || path.Clean(name) != name || !filepath.IsLocal(name) || name == metaName {
		return corrupt("entry name %q", hdr.Name)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if u.links[dir] {
			return corrupt("entry %q lies below a link", name)
		}
	}
	p := filepath.Join(u.dest, filepath.FromSlash(name))
	perm := os.FileMode(hdr.Mode).Perm()
	switch hdr.Typeflag {
	case tar.TypeDir:
		// The owner must be able to write into it while it is filled.
		if err := os.Mkdir(p, perm|0o700); err != nil {
			return unpackErr(name, err)
		}
	case tar.TypeReg:
		if err := u.file(p, name, perm, hdr, tr); err != nil {
			return unpackErr(name, err)
		}
		st.Files++
		st.Content += hdr.Size
	case tar.TypeSymlink:
		target := hdr.Linkname
		switch {
		case hdr.PAXRecords[linkRecord] != "":
			target = filepath.Join(u.opts.Source, filepath.FromSlash(name))
			st.Links++
		case !filepath.IsAbs(target) && !filepath.IsLocal(filepath.Join(filepath.Dir(name), target)):
			// A relative link out of the build (a model linked across file
			// systems) means the same place seen from the volume's build.
			target = filepath.Join(u.opts.Source, filepath.Dir(name), target)
		}
		if err := os.Symlink(target, p); err != nil {
			return unpackErr(name, err)
		}
		u.links[name] = true
	default:
		return corrupt("entry %q has type %q", name, hdr.Typeflag)
	}
	return nil
}

// file writes a regular file: a small one by the writers' pool, from a
// buffer read here, a large one here, streamed.
func (u *unpacker) file(p, name string, perm os.FileMode, hdr *tar.Header, tr *tar.Reader) error {
	if hdr.Size > inlineSize {
		return createFile(p, uint32(perm), hdr.ModTime, nil, io.LimitReader(tr, hdr.Size), u.buf)
	}
	data := bufPool.Get().(*[]byte)
	buf := (*data)[:0]
	if cap(buf) < int(hdr.Size) {
		buf = make([]byte, 0, hdr.Size)
	}
	buf = buf[:hdr.Size]
	if _, err := io.ReadFull(tr, buf); err != nil {
		bufPool.Put(data)
		return corrupt("%v", err)
	}
	*data = buf
	return u.w.add(fileJob{path: p, name: name, perm: uint32(perm), mtime: hdr.ModTime, data: data})
}

func unpackErr(name string, err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return corrupt("%s: %s", name, ce.Reason)
	}
	if errors.Is(err, os.ErrExist) {
		return corrupt("entry %q appears twice", name)
	}
	if errors.Is(err, os.ErrNotExist) {
		return corrupt("entry %q comes before its directory", name)
	}
	return fmt.Errorf("unpack %s: %w", name, err)
}

// tailReader passes on everything but the last footerSize bytes of r,
// which it keeps in tail once r ends: the payload of a stream whose length
// is not known in advance.
type tailReader struct {
	r          io.Reader
	buf        []byte
	start, end int
	eof        bool
	tail       []byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	for {
		if avail := t.end - t.start - footerSize; avail > 0 {
			n := copy(p, t.buf[t.start:t.start+avail])
			t.start += n
			return n, nil
		}
		if t.eof {
			t.tail = t.buf[t.start:t.end]
			return 0, io.EOF
		}
		t.end = copy(t.buf, t.buf[t.start:t.end])
		t.start = 0
		n, err := t.r.Read(t.buf[t.end:])
		t.end += n
		if err == io.EOF {
			t.eof = true
		} else if err != nil {
			return 0, err
		}
	}
}

// hashReader hashes and counts what it reads.
type hashReader struct {
	r io.Reader
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (hr *hashReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	return n, err
}
