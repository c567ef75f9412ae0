package output

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"regexp"
	"testing"
	"testing/iotest"
)

var placeholder = regexp.MustCompile(`b64-[0-9a-f]{24}-`)

// TestRender: the spliced rendering is byte for byte what encoding/json
// writes for the same shape, for every format and for content sizes around
// the 3-byte groups and the parallel split.
func TestRender(t *testing.T) {
	sizes := []int{0, 1, 2, 3, 4, 5, 100, 256<<10 - 1, 512<<10 + 1, 1<<20 + 2}
	rng := rand.New(rand.NewPCG(1, 2))
	var files []Local
	for i, n := range sizes {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		name := []string{"a.png", `q"uote&<b64-x>.png`, "v.mp4", "b64-0.wav"}[i%4]
		files = append(files, Local{NodeID: "9", Kind: "images", Filename: name, Type: "output", Data: data})
	}
	enc, err := Base64(context.Background(), files, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	enc = append(enc, File{Filename: "x.mp4", Type: "output", URL: "https://storage.googleapis.com/b/o?a=1&b=2"})
	r := Result{VersionID: "v", OutputMode: "base64", PromptID: "p", Outputs: enc, Timings: map[string]float64{"total": 1.5}}
	for _, format := range []string{"", FormatDefault, FormatOriginal, FormatWorkerComfyUI} {
		t.Run(format, func(t *testing.T) {
			rendered, err := Render(format, r)
			if err != nil {
				t.Fatal(err)
			}
			got := rendered.Bytes()
			shaped, _ := Shape(format, r)
			var buf bytes.Buffer
			e := json.NewEncoder(&buf)
			e.SetEscapeHTML(false)
			if err := e.Encode(shaped); err != nil {
				t.Fatal(err)
			}
			want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
			if !bytes.Equal(got, want) {
				t.Fatalf("render differs from encoding/json (%d vs %d bytes)", len(got), len(want))
			}
			if !json.Valid(got) || placeholder.Match(got) {
				t.Fatalf("placeholder left in the result")
			}
			if rendered.Len() != int64(len(want)) {
				t.Errorf("Len = %d, want %d", rendered.Len(), len(want))
			}
			// Streamed in reads of every size, including ones too small
			// for a base64 group: the same bytes.
			for _, size := range []int{4096, 32 << 10} {
				got, err := io.ReadAll(&sizedReader{rendered.NewReader(), size})
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("read in %d-byte pieces: %v, differs: %v", size, err, !bytes.Equal(got, want))
				}
			}
			if err := iotest.TestReader(rendered.NewReader(), want); err != nil {
				t.Fatal(err)
			}
		})
	}
	for i, f := range enc[:len(sizes)] {
		if f.Base64.token != "" {
			t.Errorf("output %d keeps its placeholder after rendering", i)
		}
		var back Blob
		b, _ := f.Base64.MarshalJSON()
		if err := back.UnmarshalJSON(b); err != nil || !bytes.Equal(back.Bytes(), files[i].Data) {
			t.Errorf("output %d: JSON round trip lost the content", i)
		}
	}
}

// sizedReader reads at most size bytes per call.
type sizedReader struct {
	r    io.Reader
	size int
}

func (s *sizedReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.size)]) }

// TestRenderTinyReads: reads with room for less than a base64 group still
// get every byte, in order.
func TestRenderTinyReads(t *testing.T) {
	var outs []File
	for n := range 40 {
		outs = append(outs, File{Filename: "f.bin", Type: "output", Base64: NewBlob(bytes.Repeat([]byte{byte(n)}, n))})
	}
	rendered, err := Render("", Result{VersionID: "v", OutputMode: "base64", Outputs: outs})
	if err != nil {
		t.Fatal(err)
	}
	want := rendered.Bytes()
	for _, size := range []int{1, 2, 3, 5, 7} {
		got, err := io.ReadAll(&sizedReader{rendered.NewReader(), size})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read in %d-byte pieces: %v\n got %s\nwant %s", size, err, got, want)
		}
	}
}

// TestEncodeBase64MatchesTheStandard: the SIMD encoder writes what
// encoding/base64 writes, for every length around its block sizes.
func TestEncodeBase64MatchesTheStandard(t *testing.T) {
	sizes := []int{bigBase64Input, bigBase64Input + 1, bigBase64Input + 2}
	for n := 0; n < 300; n++ {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i*7 + n)
		}
		dst := make([]byte, base64.StdEncoding.EncodedLen(n))
		encodeBase64(dst, src)
		if string(dst) != base64.StdEncoding.EncodeToString(src) {
			t.Fatalf("%d bytes: encodings differ", n)
		}
	}
}

const bigBase64Input = 3<<20 + 7

// BenchmarkRender1MiB: one 1 MiB output rendered as a result, against
// encoding/json marshalling a base64 string of the same output.
func BenchmarkRender1MiB(b *testing.B) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 31)
	}
	r := Result{VersionID: "v", OutputMode: "base64", Outputs: []File{{Filename: "a.png", Type: "output", Base64: NewBlob(data)}}}
	b.Run("render-bytes", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rd, err := Render("", r)
			if err != nil {
				b.Fatal(err)
			}
			rd.Bytes()
		}
	})
	b.Run("render-streamed", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 32<<10)
		for b.Loop() {
			rd, err := Render("", r)
			if err != nil {
				b.Fatal(err)
			}
			io.CopyBuffer(io.Discard, struct{ io.Reader }{rd.NewReader()}, buf)
		}
	})
	b.Run("encoding-json-baseline", func(b *testing.B) {
		type file struct {
			Filename string `json:"filename"`
			Base64   string `json:"base64"`
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			v := map[string]any{"version_id": "v", "outputs": []file{{"a.png", base64.StdEncoding.EncodeToString(data)}}}
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
