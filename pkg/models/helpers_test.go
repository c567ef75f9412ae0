package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/syncbuf"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// testData returns n deterministic pseudo-random bytes and their sha256.
func testData(n int, seed uint64) ([]byte, string) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b, sha256hex(b)
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// eventLog records progress events.
type eventLog struct {
	mu     sync.Mutex
	events []progress.Event
}

func (l *eventLog) report(e progress.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) all() []progress.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]progress.Event(nil), l.events...)
}

type testEnv struct {
	st     *Store
	root   string
	logs   *syncBuffer
	events *eventLog
}

// newTestStore makes a store with fast retries. mod may adjust the config.
func newTestStore(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	env := &testEnv{root: t.TempDir(), logs: &syncBuffer{}, events: &eventLog{}}
	cfg := Config{
		Root:             env.root,
		MaxAttempts:      4,
		BackoffBase:      time.Millisecond,
		BackoffMax:       5 * time.Millisecond,
		IdleTimeout:      2 * time.Second,
		Locks:            cache.Locks{Poll: 10 * time.Millisecond},
		ProgressInterval: time.Millisecond,
		Logger:           zerolog.New(env.logs),
		Progress:         env.events.report,
	}
	if mod != nil {
		mod(&cfg)
	}
	st, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env.st = st
	return env
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// storeFiles lists the files under the store's blob and partial
// directories, to assert that nothing was left behind.
func storeFiles(t *testing.T, st *Store, sub string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(st.Dir(), sub))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// helperResult is what a helper process prints.
type helperResult struct {
	Blob  Blob   `json:"blob"`
	Error string `json:"error"`
}

// TestHelperProcess is not a test: the multi-process tests run the test
// binary again with MODELS_HELPER set, and this fetches one model.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("MODELS_HELPER") != "1" {
		t.Skip("helper process")
	}
	cfg := Config{
		Root:        os.Getenv("MODELS_ROOT"),
		MaxAttempts: 4,
		BackoffBase: 10 * time.Millisecond,
		Locks:       cache.Locks{Poll: 10 * time.Millisecond},
		IdleTimeout: 10 * time.Second,
		Logger:      zerolog.New(os.Stderr),
	}
	st, err := New(cfg)
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	b, err := st.Fetch(context.Background(), Request{Source: os.Getenv("MODELS_SOURCE"), SHA256: os.Getenv("MODELS_SHA256")})
	res := helperResult{Blob: b}
	if err != nil {
		res.Error = err.Error()
	}
	line, _ := json.Marshal(res)
	fmt.Println("RESULT " + string(line))
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func helperEnv(root, source, sha string) []string {
	return append(os.Environ(), "MODELS_HELPER=1", "MODELS_ROOT="+root, "MODELS_SOURCE="+source, "MODELS_SHA256="+sha)
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
