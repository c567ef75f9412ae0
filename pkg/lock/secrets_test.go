package lock

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// secretDoc writes credentials into every kind of URL a spec has.
const secretDoc = `{"schema_version": 2, "version_id": "v",
 "comfy": {"repo": "https://bob:gitPASS1@g/comfy", "ref": "master"},
 "custom_nodes": [{"repo": "https://ghpTOKEN2@g/a", "ref": "main"}],
 "models": [
  {"source": "https://h/s4.bin?token=mdlTOKEN3", "target_path": "$MODELS_DIR/loras/s4.bin"},
  {"source": "https://h/alt.bin?X-Amz-Signature=SIG4&v=1", "target_path": "$MODELS_DIR/loras/s4.bin"}
 ],
 "python_packages": ["--extra-index-url=https://pip:pipTOKEN5@idx/simple", "onnx"]}`

var planted = []string{"gitPASS1", "ghpTOKEN2", "mdlTOKEN3", "SIG4", "pipTOKEN5"}

func secretRemote() *fakeRemote {
	return &fakeRemote{refs: map[string]string{
		"https://bob:gitPASS1@g/comfy master": sha('1'),
		"https://ghpTOKEN2@g/a main":          sha('a'),
	}}
}

// checkNoSecrets fails when any planted credential is in b.
func checkNoSecrets(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, s := range planted {
		if strings.Contains(string(b), s) {
			t.Errorf("%s holds %q:\n%s", what, s, b)
		}
	}
}

// checkFetch asserts that l, though its file is redacted, fetches from
// the spec's real URLs.
func checkFetch(t *testing.T, l *Lock) {
	t.Helper()
	if got := l.Comfy.FetchURL(); got != "https://bob:gitPASS1@g/comfy" {
		t.Errorf("comfy fetch URL %q", got)
	}
	if got := l.CustomNodes[0].Repo.FetchURL(); got != "https://ghpTOKEN2@g/a" {
		t.Errorf("node fetch URL %q", got)
	}
	want := []string{"https://h/s4.bin?token=mdlTOKEN3", "https://h/alt.bin?X-Amz-Signature=SIG4&v=1"}
	if got := l.Models[0].FetchSources(); !slices.Equal(got, want) {
		t.Errorf("model fetch sources %q, want %q", got, want)
	}
	if got := l.FetchPackages(); got[0] != "--extra-index-url=https://pip:pipTOKEN5@idx/simple" {
		t.Errorf("fetch packages %q", got)
	}
}

func TestLockFileHoldsNoCredentials(t *testing.T) {
	s := decode(t, secretDoc)
	ctx := context.Background()
	l, _, err := Resolve(ctx, s, nil, secretRemote(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "resolved", "v.lock.json")
	if err := Write(p, l); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	checkNoSecrets(t, "the lock file", file)
	if !strings.Contains(string(file), `"source": "https://h/s4.bin?token=REDACTED"`) ||
		!strings.Contains(string(file), `"repo": "https://REDACTED@g/comfy"`) {
		t.Errorf("the lock file does not say which URLs it redacted:\n%s", file)
	}
	// What validate --json prints is the lock's entries.
	shown, _ := json.Marshal(struct {
		C Repo
		N []Node
		M []Model
		P []string
	}{l.Comfy, l.CustomNodes, l.Models, l.PythonPackages})
	checkNoSecrets(t, "the printed plan", shown)
	checkFetch(t, l)

	// The next command reads the file back: the lock is reused as is,
	// with the spec's URLs to fetch from.
	back, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	rem := secretRemote()
	again, st, err := Resolve(ctx, s, back, rem, Options{})
	if err != nil || !st.Reused || rem.calls.Load() != 0 {
		t.Fatalf("unchanged spec: reused=%v calls=%d err=%v", st.Reused, rem.calls.Load(), err)
	}
	checkFetch(t, again)
}

// A token that changes (rotated, or a new pre-signed URL) leaves the lock's
// pins and learned digests as they were: the model is the same file.
func TestNewTokenKeepsLearnedDigest(t *testing.T) {
	ctx := context.Background()
	l, _, err := Resolve(ctx, decode(t, secretDoc), nil, secretRemote(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.RecordModel("$MODELS_DIR/loras/s4.bin", strings.Repeat("e", 64), 42)
	rotated := decode(t, strings.NewReplacer("mdlTOKEN3", "mdlTOKEN9", "SIG4", "SIG8").Replace(secretDoc))
	l2, st, err := Resolve(ctx, rotated, l, secretRemote(), Options{})
	if err != nil || st.Reused {
		t.Fatalf("reused=%v err=%v", st.Reused, err)
	}
	if m := l2.Models[0]; m.SHA256 != strings.Repeat("e", 64) || m.DigestFrom != "download" {
		t.Fatalf("digest lost on a new token: %+v", m)
	}
	if got := l2.Models[0].FetchSources()[0]; got != "https://h/s4.bin?token=mdlTOKEN9" {
		t.Fatalf("fetches from %q, want the new token", got)
	}
}

// A lock written before locks were redacted is written again, redacted,
// without asking any remote: its pins and digests carry over.
func TestOldLockWithCredentialsIsRewritten(t *testing.T) {
	s := decode(t, secretDoc)
	ctx := context.Background()
	l, _, err := Resolve(ctx, s, nil, secretRemote(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.RecordModel("$MODELS_DIR/loras/s4.bin", strings.Repeat("e", 64), 42)
	// The old format: the spec's URLs verbatim.
	old := *l
	old.Comfy.Repo = "https://bob:gitPASS1@g/comfy"
	old.CustomNodes = []Node{l.CustomNodes[0]}
	old.CustomNodes[0].Repo.Repo = "https://ghpTOKEN2@g/a"
	old.Models = []Model{l.Models[0]}
	old.Models[0].Source = "https://h/s4.bin?token=mdlTOKEN3"
	old.Models[0].Sources = []string{"https://h/s4.bin?token=mdlTOKEN3", "https://h/alt.bin?X-Amz-Signature=SIG4&v=1"}
	old.PythonPackages = s.PythonPackages
	p := filepath.Join(t.TempDir(), "v.lock.json")
	if err := Write(p, &old); err != nil {
		t.Fatal(err)
	}
	back, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	rem := secretRemote()
	l2, st, err := Resolve(ctx, s, back, rem, Options{})
	if err != nil || st.Reused || rem.calls.Load() != 0 {
		t.Fatalf("old lock: reused=%v (want a rewrite) calls=%d err=%v", st.Reused, rem.calls.Load(), err)
	}
	if l2.Comfy.Commit != sha('1') || l2.Models[0].SHA256 != strings.Repeat("e", 64) {
		t.Fatalf("pins or digests lost: %+v %+v", l2.Comfy, l2.Models[0])
	}
	b, _ := json.Marshal(l2)
	checkNoSecrets(t, "the rewritten lock", b)
	checkFetch(t, l2)
}

// A damaged lock is described in JSON terms, with what to do, never in Go
// types.
func TestReadDamagedLock(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"schema_version": 2, "comfy": []}`, "at comfy: want an object, got a list"},
		{`{"schema_version": 2, "models": {"a": 1}}`, "at models: want a list, got an object"},
		{`{"schema_version": 2, "comfy": {"repo": `, "the JSON ends early"},
	} {
		p := filepath.Join(t.TempDir(), "v.lock.json")
		if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Read(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "worker resolve") {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		for _, internal := range []string{"Go ", "lock.Repo", "struct", "[]lock.Model"} {
			if strings.Contains(err.Error(), internal) {
				t.Errorf("%s: error %q shows Go internals", tc.body, err)
			}
		}
	}
}
