package version

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/snapshot"
)

// A job's Prepare checks the build on the volume (a few dozen round
// trips) before the job makes its local copy. When the marker already says
// the build is complete for the lock, its key is known before those checks:
// the copy starts then, and the checks run while it is unpacked. If realize
// then changes the build, the early copy is dropped (it was of the old one).

// early is a local copy started by Prepare, handed to the first Local.
type early struct {
	key    string
	source string // the build on the volume it copies
	done   chan struct{}
	copy   *snapshot.Copy
	err    error
	cancel context.CancelFunc
	taken  sync.Once
}

// completeKey is the key of id's build at dir when its marker says it is
// complete for l.
func completeKey(id, dir string, l *lock.Lock) (string, bool) {
	data, err := os.ReadFile(filepath.Join(dir, realize.MarkerFile))
	if err != nil {
		return "", false
	}
	key, mk, err := buildKey(id, data)
	if err != nil || !mk.Complete || mk.VersionID != id || mk.LockDigest != realize.LockDigest(l) {
		return "", false
	}
	return key, true
}

// startEarly begins the copy of the build with key at dir.
func (m *Manager) startEarly(ctx context.Context, id, dir, key string) *early {
	store, err := m.localStore()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &early{key: key, source: filepath.Clean(dir), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(e.done)
		e.copy, e.err = store.Acquire(ctx, m.source(&Build{VersionID: id, Source: dir, Key: key}))
	}()
	return e
}

// take hands the copy over once: the first caller owns it (and must
// release it); later callers get nil.
func (e *early) take() *early {
	if e == nil {
		return nil
	}
	var got *early
	e.taken.Do(func() { got = e })
	return got
}

// drop stops the copy if it is not taken yet, and releases it.
func (e *early) drop() {
	if e = e.take(); e == nil {
		return
	}
	e.cancel()
	<-e.done
	if e.copy != nil {
		e.copy.Release()
	}
}
