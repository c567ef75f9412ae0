package lock

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/spec"
)

// fakeRemote answers from a table and counts calls; a delay shows whether
// calls overlap.
type fakeRemote struct {
	refs     map[string]string // "url ref" -> sha
	calls    atomic.Int64
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	delay    time.Duration
	mu       sync.Mutex
	asked    []string
}

func (f *fakeRemote) Resolve(ctx context.Context, url, ref string) (string, error) {
	f.calls.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.asked = append(f.asked, url+" "+ref)
	f.mu.Unlock()
	time.Sleep(f.delay)
	if sha, ok := f.refs[url+" "+ref]; ok {
		return sha, nil
	}
	return "", fmt.Errorf("ref %q not found in %s", ref, url)
}

func sha(c byte) string { return strings.Repeat(string(c), 40) }

func decode(t *testing.T, doc string) *spec.Spec {
	t.Helper()
	s, err := spec.Decode([]byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const specDoc = `{"schema_version": 2, "version_id": "v",
 "comfy": {"repo": "https://g/comfy", "ref": "master"},
 "custom_nodes": [
  {"repo": "https://g/a", "commit": "main"},
  {"repo": "https://g/b", "commit": "bbbbbbb"},
  {"repo": "https://g/c", "ref": "v1", "commit": "cccccccccccccccccccccccccccccccccccccccc"},
  {"repo": "https://g/d"}
 ],
 "models": [{"source": "hf://o/r/m.safetensors", "target_path": "$MODELS_DIR/loras/m.safetensors"}]}`

func remote() *fakeRemote {
	return &fakeRemote{refs: map[string]string{
		"https://g/comfy master": sha('1'),
		"https://g/a main":       sha('a'),
		"https://g/b bbbbbbb":    "bbbbbbb" + strings.Repeat("0", 33),
		"https://g/c v1":         sha('9'),
		"https://g/d ":           sha('d'),
	}}
}

func TestResolveIncremental(t *testing.T) {
	ctx := context.Background()
	s := decode(t, specDoc)
	r := remote()
	l, st, err := Resolve(ctx, s, nil, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Remote != 4 || r.calls.Load() != 4 {
		t.Fatalf("first resolve: %d remote entries, %d calls; want 4 (c is pinned)", st.Remote, r.calls.Load())
	}
	want := map[string]string{"a": sha('a'), "b": "bbbbbbb" + strings.Repeat("0", 33), "c": sha('c'), "d": sha('d')}
	for _, n := range l.CustomNodes {
		if n.Commit != want[n.Name] {
			t.Errorf("node %s commit %s, want %s", n.Name, n.Commit, want[n.Name])
		}
	}
	if l.Comfy.Commit != sha('1') || l.Comfy.Ref != "master" {
		t.Errorf("comfy = %+v", l.Comfy)
	}

	// Unchanged spec: the lock comes back untouched with no call at all.
	r.calls.Store(0)
	l2, st, err := Resolve(ctx, s, l, r, Options{})
	if err != nil || !st.Reused || l2 != l || r.calls.Load() != 0 {
		t.Fatalf("unchanged spec: reused=%v same=%v calls=%d err=%v", st.Reused, l2 == l, r.calls.Load(), err)
	}

	// Edit one node: only that one is asked again.
	edited := decode(t, strings.Replace(specDoc, `{"repo": "https://g/d"}`, `{"repo": "https://g/d", "ref": "dev"}`, 1))
	r.refs["https://g/d dev"] = sha('e')
	r.calls.Store(0)
	r.asked = nil
	l3, st, err := Resolve(ctx, edited, l, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Remote != 1 || len(r.asked) != 1 || r.asked[0] != "https://g/d dev" || l3.CustomNodes[3].Commit != sha('e') {
		t.Fatalf("after editing d: asked %v, lock %+v", r.asked, l3.CustomNodes[3])
	}
	if l3.CustomNodes[0].Commit != sha('a') {
		t.Error("unchanged node lost its commit")
	}

	// --update moves branches (and the pinned node follows its ref).
	r.refs["https://g/a main"] = sha('f')
	r.calls.Store(0)
	l4, _, err := Resolve(ctx, edited, l3, r, Options{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	if l4.CustomNodes[0].Commit != sha('f') || l4.CustomNodes[2].Commit != sha('9') || r.calls.Load() != 5 {
		t.Fatalf("update: a=%s c=%s calls=%d", l4.CustomNodes[0].Commit, l4.CustomNodes[2].Commit, r.calls.Load())
	}
}

func TestResolveOffline(t *testing.T) {
	ctx := context.Background()
	s := decode(t, specDoc)
	r := remote()
	_, _, err := Resolve(ctx, s, nil, r, Options{Offline: true})
	var oe *OfflineError
	if !errors.As(err, &oe) || !oe.NoLock || r.calls.Load() != 0 {
		t.Fatalf("offline without lock: err=%v calls=%d", err, r.calls.Load())
	}
	if !strings.Contains(err.Error(), "worker resolve v") {
		t.Errorf("message does not say what to do: %v", err)
	}
	l, _, err := Resolve(ctx, s, nil, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.calls.Store(0)
	edited := decode(t, strings.Replace(specDoc, `"python_packages"`, `"x"`, 1)+"")
	edited.PythonPackages = []string{"numpy"} // a change that needs no remote
	l2, _, err := Resolve(ctx, edited, l, r, Options{Offline: true})
	if err != nil || r.calls.Load() != 0 || l2.SpecDigest == l.SpecDigest {
		t.Fatalf("offline after an edit that needs no remote: err=%v calls=%d", err, r.calls.Load())
	}
	pinned := decode(t, `{"schema_version": 2, "version_id": "p", "comfy": {"repo": "https://g/comfy", "commit": "`+sha('1')+`"}}`)
	if _, _, err := Resolve(ctx, pinned, nil, r, Options{Offline: true}); err != nil {
		t.Fatalf("a fully pinned spec needs no network, even offline: %v", err)
	}
}

func TestResolveConcurrentAndErrors(t *testing.T) {
	doc := `{"schema_version": 2, "version_id": "v", "comfy": {"repo": "https://g/comfy", "ref": "master"}, "custom_nodes": [`
	r := &fakeRemote{refs: map[string]string{"https://g/comfy master": sha('1')}, delay: 20 * time.Millisecond}
	for i := 0; i < 20; i++ {
		if i > 0 {
			doc += ","
		}
		doc += fmt.Sprintf(`{"repo": "https://g/n%d"}`, i)
		if i != 7 {
			r.refs[fmt.Sprintf("https://g/n%d ", i)] = sha('a')
		}
	}
	s := decode(t, doc+"]}")
	start := time.Now()
	_, _, err := Resolve(context.Background(), s, nil, r, Options{Jobs: 8})
	if err == nil || !strings.Contains(err.Error(), "custom node n7") {
		t.Fatalf("want an error naming n7, got %v", err)
	}
	if r.maxSeen.Load() != 8 {
		t.Errorf("max concurrent listings = %d, want 8", r.maxSeen.Load())
	}
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Errorf("21 listings of 20ms took %v: not concurrent", el)
	}
}

func TestModelDigestsCarryOver(t *testing.T) {
	s := decode(t, specDoc)
	l, _, err := Resolve(context.Background(), s, nil, remote(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !l.RecordModel("$MODELS_DIR/loras/m.safetensors", strings.Repeat("e", 64), 42) {
		t.Fatal("RecordModel reported no change")
	}
	p := filepath.Join(t.TempDir(), "resolved", "v.lock.json")
	if err := Write(p, l); err != nil {
		t.Fatal(err)
	}
	back, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	edited := decode(t, strings.Replace(specDoc, `{"repo": "https://g/d"}`, `{"repo": "https://g/d", "name": "dd"}`, 1))
	l2, _, err := Resolve(context.Background(), edited, back, remote(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m := l2.Models[0]; m.SHA256 != strings.Repeat("e", 64) || m.Size != 42 || m.DigestFrom != "download" {
		t.Fatalf("digest learned on download was lost: %+v", m)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none.lock.json")); !errors.Is(err, ErrNoLock) {
		t.Fatalf("missing lock: %v", err)
	}
}
