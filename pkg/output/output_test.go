package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func writeFiles(t *testing.T, sizes map[string]int) []Local {
	t.Helper()
	dir := t.TempDir()
	var out []Local
	for _, name := range []string{"a.png", "b.mp4", "c.wav", "p.png"} {
		n, ok := sizes[name]
		if !ok {
			continue
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, bytes.Repeat([]byte{byte(len(name) + n)}, n), 0o644)
		typ := "output"
		if name == "p.png" {
			typ = "temp"
		}
		out = append(out, Local{NodeID: "9", Kind: "images", Filename: name, Type: typ, Path: p})
	}
	return out
}

func TestBase64(t *testing.T) {
	files := writeFiles(t, map[string]int{"a.png": 1000, "b.mp4": 3001, "c.wav": 0})
	got, err := Base64(context.Background(), files, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range got {
		raw, _ := os.ReadFile(files[i].Path)
		dec, err := base64.StdEncoding.DecodeString(f.Base64.String())
		sum := sha256.Sum256(raw)
		if err != nil || !bytes.Equal(dec, raw) || f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(raw)) {
			t.Errorf("%s: round trip or metadata wrong: %+v", f.Filename, f)
		}
	}
	if got[0].ContentType != "image/png" || got[1].ContentType != "video/mp4" || got[2].ContentType != "audio/wav" {
		t.Errorf("content types: %s %s %s", got[0].ContentType, got[1].ContentType, got[2].ContentType)
	}
	_, err = Base64(context.Background(), files, 3000)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Encoded != EncodedLen(1000)+EncodedLen(3001) {
		t.Fatalf("limit: %v", err)
	}
	if want := `"output_mode": "gcs"`; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("the error does not point to GCS: %v", err)
	}
}
