package comfytest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

func (s *Server) inputPath(name string) string {
	return filepath.Join(s.opts.InputDir, filepath.Clean("/"+name))
}

func (s *Server) dirByType(typ string) string {
	switch typ {
	case "output", "":
		return s.opts.OutputDir
	case "input":
		return s.opts.InputDir
	case "temp":
		return s.opts.TempDir
	}
	return ""
}

// renderPNG draws a spec: a solid colour (compresses to almost nothing) or
// seeded noise stored without compression, so a w×h noise image is about
// 3·w·h bytes — a predictable size for download benchmarks. Buffers are
// pooled so that the fake's garbage does not slow down the client it serves
// in the same process.
func renderPNG(img *imageSpec, out *bytes.Buffer) error {
	n := 4 * img.w * img.h
	pix := pixPool.Get().(*[]byte)
	defer pixPool.Put(pix)
	if cap(*pix) < n {
		*pix = make([]byte, n)
	}
	m := &image.RGBA{Pix: (*pix)[:n], Stride: 4 * img.w, Rect: image.Rect(0, 0, img.w, img.h)}
	if img.noise {
		r := rand.New(rand.NewPCG(uint64(img.seed), 0x9e3779b97f4a7c15))
		for i := 0; i < len(m.Pix); i += 8 {
			v := r.Uint64()
			m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = byte(v), byte(v>>8), byte(v>>16), 0xFF
			if i+7 < len(m.Pix) {
				m.Pix[i+4], m.Pix[i+5], m.Pix[i+6], m.Pix[i+7] = byte(v>>24), byte(v>>32), byte(v>>40), 0xFF
			}
		}
	} else {
		c := color.RGBA{byte(img.color >> 16), byte(img.color >> 8), byte(img.color), 0xFF}
		for i := 0; i < len(m.Pix); i += 4 {
			m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = c.R, c.G, c.B, c.A
		}
	}
	enc := png.Encoder{CompressionLevel: png.NoCompression, BufferPool: encPool}
	if !img.noise {
		enc.CompressionLevel = png.BestSpeed
	}
	return enc.Encode(out, m)
}

var (
	pixPool = sync.Pool{New: func() any { return new([]byte) }}
	bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	encPool = &pngBufferPool{}
)

type pngBufferPool struct{ p sync.Pool }

func (p *pngBufferPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}

func (p *pngBufferPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

func (s *Server) saveImage(img *imageSpec, typ, prefix string) (map[string]any, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if err := renderPNG(img, buf); err != nil {
		return nil, err
	}
	return s.saveBytes(typ, prefix, ".png", buf.Bytes())
}

func (s *Server) saveGIF(img *imageSpec, prefix string) (map[string]any, error) {
	w, h := min(img.w, 256), min(img.h, 256)
	anim := &gif.GIF{}
	for f := 0; f < 2; f++ {
		p := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		for i := range p.Pix {
			p.Pix[i] = byte(f * 40)
		}
		anim.Image = append(anim.Image, p)
		anim.Delay = append(anim.Delay, 10)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, anim); err != nil {
		return nil, err
	}
	return s.saveBytes("output", prefix, ".gif", buf.Bytes())
}

var counterRE = regexp.MustCompile(`_(\d{5})_?\.[^.]+$`)

// saveBytes writes <prefix>_<counter>_<ext> the way SaveImage names files: a
// "/" in the prefix makes a subfolder, and the counter continues after the
// highest one already in that folder for the prefix.
func (s *Server) saveBytes(typ, prefix, ext string, b []byte) (map[string]any, error) {
	if prefix == "" {
		prefix = "ComfyUI"
	}
	sub, base := filepath.Split(prefix)
	sub = strings.Trim(sub, "/")
	if strings.Contains(sub, "..") || strings.Contains(base, "..") {
		return nil, &nodeError{typ: "Exception", msg: "**** ERROR: Saving image outside the output folder is not allowed."}
	}
	dir := filepath.Join(s.dirByType(typ), sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	counter := 1
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), base+"_") {
			continue
		}
		if m := counterRE.FindStringSubmatch(e.Name()); m != nil {
			var n int
			fmt.Sscanf(m[1], "%d", &n)
			counter = max(counter, n+1)
		}
	}
	name := fmt.Sprintf("%s_%05d_%s", base, counter, ext)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return nil, err
	}
	return map[string]any{"filename": name, "subfolder": sub, "type": typ}, nil
}

func randomSuffix() string {
	const letters = "abcdefghijklmnopqrstupvxyz"
	b := make([]byte, 5)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}

// handleView follows ComfyUI's /view: annotated names ("x.png [output]"),
// 400 for absolute or ".." names, 403 for a subfolder escaping its base,
// 404 when missing.
func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("filename") {
		w.WriteHeader(404)
		return
	}
	name := q.Get("filename")
	dir := ""
	for _, t := range []string{"output", "input", "temp"} {
		if suffix := " [" + t + "]"; strings.HasSuffix(name, suffix) {
			name, dir = strings.TrimSuffix(name, suffix), s.dirByType(t)
		}
	}
	if name == "" || name[0] == '/' || strings.Contains(name, "..") {
		w.WriteHeader(400)
		return
	}
	if dir == "" {
		dir = s.dirByType(q.Get("type"))
	}
	if dir == "" {
		w.WriteHeader(400)
		return
	}
	if q.Has("subfolder") {
		full := filepath.Join(dir, q.Get("subfolder"))
		if full != dir && !strings.HasPrefix(full, dir+string(filepath.Separator)) {
			w.WriteHeader(403)
			return
		}
		dir = full
	}
	path := filepath.Join(dir, filepath.Base(name))
	f, err := os.Open(path)
	if err != nil {
		w.WriteHeader(404)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		w.WriteHeader(404)
		return
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf("filename=%q", filepath.Base(name)))
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// handleUpload is /upload/image: overwrite=true|1 replaces; otherwise an
// identical file is reused and a different one renamed "name (1).ext".
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		w.WriteHeader(400)
		return
	}
	defer r.MultipartForm.RemoveAll()
	file, hdr, err := r.FormFile("image")
	if err != nil || hdr.Filename == "" {
		w.WriteHeader(400)
		return
	}
	defer file.Close()
	typ := r.FormValue("type")
	if typ == "" {
		typ = "input"
	}
	base := s.dirByType(typ)
	if base == "" {
		base, typ = s.opts.InputDir, "input"
	}
	sub := r.FormValue("subfolder")
	folder := filepath.Join(base, filepath.Clean(sub))
	name := hdr.Filename
	path := filepath.Join(folder, name)
	if path != base && !strings.HasPrefix(path, base+string(filepath.Separator)) {
		w.WriteHeader(400)
		return
	}
	data, err := io.ReadAll(file)
	if err != nil {
		w.WriteHeader(400)
		return
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		w.WriteHeader(500)
		return
	}
	overwrite := r.FormValue("overwrite")
	duplicate := false
	if overwrite != "true" && overwrite != "1" {
		ext := filepath.Ext(name)
		stem := strings.TrimSuffix(name, ext)
		for i := 1; ; i++ {
			old, err := os.ReadFile(path)
			if err != nil {
				break
			}
			if bytes.Equal(old, data) {
				duplicate = true
				break
			}
			name = fmt.Sprintf("%s (%d)%s", stem, i, ext)
			path = filepath.Join(folder, name)
		}
	}
	if !duplicate {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			w.WriteHeader(500)
			return
		}
	}
	s.mu.Lock()
	s.uploads = append(s.uploads, name)
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"name": name, "subfolder": sub, "type": typ})
}
