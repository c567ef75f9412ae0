package output

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	simdb64 "github.com/segmentio/asm/base64"

	"github.com/runpod-comfy/worker/internal/jsonx"
)

// Blob is an output file's content; it encodes as a base64 JSON string.
// Keeping the raw bytes until the result is written lets Render encode each
// output exactly once, straight into the result body, instead of building
// a base64 string and copying it through encoding/json's escaper.
type Blob struct {
	data  []byte
	token string // set only while Render marshals the rest of a result
}

// NewBlob wraps data; the Blob does not copy it.
func NewBlob(data []byte) *Blob { return &Blob{data: data} }

// Bytes returns the content.
func (b *Blob) Bytes() []byte { return b.data }

// String returns the base64 text.
func (b *Blob) String() string { return base64.StdEncoding.EncodeToString(b.data) }

// MarshalJSON encodes the content as a base64 string.
func (b *Blob) MarshalJSON() ([]byte, error) {
	if b.token != "" {
		return []byte(`"` + b.token + `"`), nil
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(b.data))+2)
	out[0], out[len(out)-1] = '"', '"'
	encodeBase64(out[1:len(out)-1], b.data)
	return out, nil
}

// UnmarshalJSON reads a base64 string.
func (b *Blob) UnmarshalJSON(p []byte) error {
	var s string
	if err := json.Unmarshal(p, &s); err != nil {
		return err
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("base64 output: %w", err)
	}
	b.data, b.token = data, ""
	return nil
}

// Render encodes r in format as JSON. The metadata is marshalled with a
// unique placeholder for each output's content; the result keeps the
// metadata and the raw contents side by side, and writes the base64 of each
// content only when it is read: while the result is being sent, in pieces
// the size of the sender's buffer, with no copy of the whole result ever
// made.
func Render(format string, r Result) (*Rendered, error) {
	var blobs []*Blob
	for _, f := range r.Outputs {
		if f.Base64 != nil && f.Base64.token == "" {
			blobs = append(blobs, f.Base64)
		}
	}
	var nonce [12]byte
	rand.Read(nonce[:])
	prefix := "b64-" + hex.EncodeToString(nonce[:]) + "-"
	for i, b := range blobs {
		b.token = prefix + strconv.Itoa(i)
	}
	meta, err := func() ([]byte, error) {
		defer func() {
			for _, b := range blobs {
				b.token = ""
			}
		}()
		shaped, err := Shape(format, r)
		if err != nil {
			return nil, err
		}
		return jsonx.Marshal(shaped)
	}()
	if err != nil {
		return nil, err
	}
	return splice(meta, []byte(`"`+prefix), blobs)
}

// Rendered is a result as JSON: literal pieces and contents still to be
// base64-encoded, in order.
type Rendered struct {
	pieces []piece
	size   int64
}

// piece is either literal JSON text or raw content written as base64.
type piece struct {
	lit, raw []byte
	isRaw    bool
}

// splice cuts meta at each quoted placeholder (quote + prefix + index +
// quote) and puts the quoted base64 of blobs[index] there.
func splice(meta, open []byte, blobs []*Blob) (*Rendered, error) {
	r := &Rendered{}
	prev := 0
	for off := 0; ; {
		k := bytes.Index(meta[off:], open)
		if k < 0 {
			break
		}
		start := off + k
		q := bytes.IndexByte(meta[start+len(open):], '"')
		if q < 0 {
			return nil, errors.New("render result: unterminated placeholder")
		}
		end := start + len(open) + q + 1
		i, err := strconv.Atoi(string(meta[start+len(open) : end-1]))
		if err != nil || i < 0 || i >= len(blobs) {
			return nil, errors.New("render result: bad placeholder")
		}
		// The quotes stay literal; the placeholder between them becomes
		// the content.
		r.add(piece{lit: meta[prev : start+1]})
		r.add(piece{raw: blobs[i].data, isRaw: true})
		prev, off = end-1, end
	}
	r.add(piece{lit: meta[prev:]})
	return r, nil
}

func (r *Rendered) add(p piece) {
	if p.isRaw {
		r.size += int64(base64.StdEncoding.EncodedLen(len(p.raw)))
	} else {
		r.size += int64(len(p.lit))
	}
	r.pieces = append(r.pieces, p)
}

// Len is the size of the JSON in bytes.
func (r *Rendered) Len() int64 { return r.size }

// NewReader reads the JSON from its start, encoding contents as they are
// read; every reader is independent, so a post can be retried.
func (r *Rendered) NewReader() io.Reader { return &renderReader{pieces: r.pieces} }

// Bytes returns the JSON in one buffer.
func (r *Rendered) Bytes() []byte {
	out := make([]byte, r.size)
	w := 0
	for _, p := range r.pieces {
		if !p.isRaw {
			w += copy(out[w:], p.lit)
			continue
		}
		n := base64.StdEncoding.EncodedLen(len(p.raw))
		encodeBase64(out[w:w+n], p.raw)
		w += n
	}
	return out
}

// MarshalJSON returns Bytes, so a Rendered can sit inside other values.
func (r *Rendered) MarshalJSON() ([]byte, error) { return r.Bytes(), nil }

// renderReader encodes straight into the caller's buffer. A buffer with
// room for less than one 4-character group gets the group through pend.
type renderReader struct {
	pieces []piece
	i, off int // current piece; bytes of it consumed (raw bytes for content)
	pend   [4]byte
	pn, po int // pend holds pn bytes, po of them already read
}

func (rr *renderReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if rr.po < rr.pn {
			c := copy(p[n:], rr.pend[rr.po:rr.pn])
			rr.po += c
			n += c
			continue
		}
		if rr.i == len(rr.pieces) {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		pc := rr.pieces[rr.i]
		if !pc.isRaw {
			c := copy(p[n:], pc.lit[rr.off:])
			rr.off += c
			n += c
		} else if rest := pc.raw[rr.off:]; len(rest) > 0 {
			groups := (len(p) - n) / 4
			if groups == 0 {
				take := min(3, len(rest))
				encodeBase64(rr.pend[:], rest[:take])
				rr.pn, rr.po = base64.StdEncoding.EncodedLen(take), 0
				rr.off += take
				continue
			}
			// Whole groups only, except for the content's final bytes,
			// whose padded group always fits in the room counted.
			take := min(groups*3, len(rest))
			encodeBase64(p[n:], rest[:take])
			n += base64.StdEncoding.EncodedLen(take)
			rr.off += take
		}
		if pc.isRaw && rr.off == len(pc.raw) || !pc.isRaw && rr.off == len(pc.lit) {
			rr.i, rr.off = rr.i+1, 0
		}
	}
	return n, nil
}

// encodeBase64 is standard base64 encoding with SIMD instructions where the
// CPU has them (AVX2: about 13 times encoding/base64's speed here), which
// makes encoding a large output a small part of sending it.
func encodeBase64(dst, src []byte) {
	simdb64.StdEncoding.Encode(dst, src)
}
