package spec

import (
	"os"
	"testing"
)

// FuzzDecode: the decoder must never panic, and whatever it accepts must
// survive Marshal -> Decode with the same digest (the lock relies on it).
func FuzzDecode(f *testing.F) {
	if b, err := os.ReadFile("testdata/wan-video.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(withModel(`{"source": "hf://a/b/c", "target_path": "$COMFY_HOME/x/../y"}`)))
	f.Add([]byte(withNode(`{"repo": "git@github.com:a/b.git", "commit": "main", "target_dir": "$COMFY_HOME/custom_nodes/b"}`)))
	f.Add([]byte(`{"version_id": "v", "lock": "x"}`))
	f.Add([]byte(`[1, {"a": null}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data, "")
		if err != nil {
			return
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		s2, err := Decode(out, "")
		if err != nil {
			t.Fatalf("our own output does not decode: %v\n%s", err, out)
		}
		if s.Digest() != s2.Digest() {
			t.Fatalf("digest changed across a round trip:\n%s", out)
		}
	})
}
