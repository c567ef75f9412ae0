package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The file is the payload (a tar stream, compressed or not) and then a
// footer. The footer comes last because a writer learns the digest only
// at the end, and a reader can check it with one read at a known offset
// before unpacking anything: a truncated file loses its footer.
//
//	0   8  magic "RPCSNAP1"
//	8   1  codec (codecTar, codecZstd)
//	9   7  zero
//	16  8  payload length (little endian)
//	24  8  bytes of file content the payload unpacks to
//	32  8  number of tar entries
//	40 32  sha256 of the payload
//	72  8  magic again
const footerSize = 80

var magic = []byte("RPCSNAP1")

const (
	codecTar  byte = 0
	codecZstd byte = 1
)

// zstdMagic starts every zstd frame; a tar stream starts with a name.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// metaName is the first entry of every snapshot: its Meta as JSON.
const metaName = ".snapshot.json"

// linkRecord marks a tar symlink entry that stands for a file left on the
// volume: it is unpacked as a link to the same path in the source build.
const linkRecord = "RPCSNAP.volume"

// formatVersion changes when an older reader could not unpack a newer
// snapshot correctly.
const formatVersion = 1

// Meta describes a snapshot; it is its first entry.
type Meta struct {
	Format int    `json:"format"`
	Key    string `json:"key"`
	// Source is the build directory the snapshot was packed from, as the
	// packer saw it (the volume may be mounted elsewhere on the reader).
	Source string `json:"source"`
	// Label names the build for people (the version id).
	Label string `json:"label,omitempty"`
}

// footer is the decoded footer.
type footer struct {
	codec   byte
	length  int64 // payload bytes
	content int64 // bytes of file content it unpacks to
	entries int64
	sum     [32]byte
}

func (f footer) marshal() []byte {
	b := make([]byte, footerSize)
	copy(b, magic)
	b[8] = f.codec
	binary.LittleEndian.PutUint64(b[16:], uint64(f.length))
	binary.LittleEndian.PutUint64(b[24:], uint64(f.content))
	binary.LittleEndian.PutUint64(b[32:], uint64(f.entries))
	copy(b[40:72], f.sum[:])
	copy(b[72:], magic)
	return b
}

func parseFooter(b []byte) (footer, error) {
	var f footer
	if len(b) != footerSize || !bytes.Equal(b[:8], magic) || !bytes.Equal(b[72:], magic) {
		return f, errors.New("no snapshot footer (the file is truncated or not a snapshot)")
	}
	f.codec = b[8]
	if f.codec != codecTar && f.codec != codecZstd {
		return f, fmt.Errorf("unknown codec %d (written by a newer worker?)", f.codec)
	}
	f.length = int64(binary.LittleEndian.Uint64(b[16:]))
	f.content = int64(binary.LittleEndian.Uint64(b[24:]))
	f.entries = int64(binary.LittleEndian.Uint64(b[32:]))
	copy(f.sum[:], b[40:72])
	if f.length < 0 || f.content < 0 || f.entries < 0 {
		return f, errors.New("footer out of range")
	}
	return f, nil
}

// readFooter reads the footer of a snapshot of size bytes.
func readFooter(r io.ReaderAt, size int64) (footer, error) {
	if size < footerSize {
		return footer{}, fmt.Errorf("%d bytes is too short for a snapshot (truncated)", size)
	}
	b := make([]byte, footerSize)
	if _, err := r.ReadAt(b, size-footerSize); err != nil {
		return footer{}, fmt.Errorf("read footer: %w", err)
	}
	f, err := parseFooter(b)
	if err != nil {
		return f, err
	}
	if f.length != size-footerSize {
		return f, fmt.Errorf("the file has %d bytes of payload, its footer says %d (truncated or appended to)", size-footerSize, f.length)
	}
	return f, nil
}

// CorruptError is a snapshot that cannot be trusted: truncated, damaged,
// or not the snapshot of the build asked for. Nothing of it was put in
// place; the caller packs the build again.
type CorruptError struct {
	Path   string
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Path == "" {
		return "snapshot is damaged: " + e.Reason
	}
	return fmt.Sprintf("snapshot %s is damaged: %s", e.Path, e.Reason)
}

// IsCorrupt reports whether err says a snapshot is damaged.
func IsCorrupt(err error) bool {
	var ce *CorruptError
	return errors.As(err, &ce)
}

func corrupt(format string, args ...any) error {
	return &CorruptError{Reason: fmt.Sprintf(format, args...)}
}
