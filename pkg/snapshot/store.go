package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/rs/zerolog"
)

// StoreOptions configure a Store.
type StoreOptions struct {
	// Dir holds the local copies; it should be on local disk.
	Dir string
	// Keep is how many copies stay; the least recently used beyond it are
	// evicted. Default 2.
	Keep int
	// MaxBytes bounds the copies' content; 0: no bound but free space.
	MaxBytes int64
	Logger   zerolog.Logger
	// LockPoll is how often a wait for another process's lock retries.
	LockPoll time.Duration
}

// Store keeps local copies of builds. It is safe for concurrent use, and
// processes on one host may share its directory.
type Store struct {
	opts StoreOptions
	mu   sync.Mutex
	keys map[string]*keyState
	// free reports a directory's free bytes (a fake in tests).
	free func(dir string) int64
}

// keyState is this process's use of one key. mu serialises making the
// copy; users and lock (guarded by the Store's mu, which is never held
// across I/O) count the callers using it and hold the shared file lock.
type keyState struct {
	mu    sync.Mutex
	users int
	lock  *flock.Flock
}

// Source is a build to copy and where its snapshot lives.
type Source struct {
	Key string
	// Label names it for people (the version id).
	Label string
	// Build is the build's directory on the volume.
	Build string
	// Snapshot is its snapshot's path; packed from Build when missing or
	// damaged.
	Snapshot string
	Pack     PackOptions
	// Fix adjusts a copy before it is put in place (a file naming the
	// build's location); may be nil.
	Fix func(dir string) error
}

// Copy is a local copy in use; Release it when ComfyUI no longer runs it.
type Copy struct {
	Key string
	Dir string
	// Made is set when this call unpacked it (else it was on disk);
	// Packed when it also packed the snapshot from the build.
	Made, Packed bool
	Stats        Stats
	Took         time.Duration

	once    sync.Once
	release func()
}

// Release lets the copy be evicted once no one else uses it.
func (c *Copy) Release() { c.once.Do(c.release) }

// NewStore opens the store at opts.Dir, creating it.
func NewStore(opts StoreOptions) (*Store, error) {
	if opts.Keep < 1 {
		opts.Keep = 2
	}
	if opts.LockPoll <= 0 {
		opts.LockPoll = 20 * time.Millisecond
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, lockDir), 0o755); err != nil {
		return nil, fmt.Errorf("local copies: %w", err)
	}
	return &Store{opts: opts, keys: map[string]*keyState{}, free: freeSpace}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.opts.Dir }

// Path is where key's copy lives (whether or not it is there).
func (s *Store) Path(key string) string { return filepath.Join(s.opts.Dir, key) }

const (
	lockDir  = ".locks"
	infoFile = ".local-copy.json"
)

func (s *Store) lockPath(key string) string {
	return filepath.Join(s.opts.Dir, lockDir, key+".lock")
}

func (s *Store) state(key string) *keyState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keys[key]
	if ks == nil {
		ks = &keyState{}
		s.keys[key] = ks
	}
	return ks
}

// inUse reports whether this process uses key's copy.
func (s *Store) inUse(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keys[key]
	return ks != nil && ks.users > 0
}

// Acquire returns src's local copy, unpacking its snapshot first when
// needed (packing it from the build when it is missing or damaged). The
// copy stays until released: other processes' evictions skip it.
func (s *Store) Acquire(ctx context.Context, src Source) (*Copy, error) {
	if !validKey(src.Key) {
		return nil, fmt.Errorf("local copy: invalid build key %q", src.Key)
	}
	start := time.Now()
	ks := s.state(src.Key)
	c := &Copy{Key: src.Key, Dir: s.Path(src.Key)}
	c.release = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ks.users--; ks.users == 0 {
			ks.lock.Unlock()
			ks.lock = nil
		}
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	s.mu.Lock()
	if ks.users > 0 {
		ks.users++
		s.mu.Unlock()
		s.touch(c.Dir)
		c.Took = time.Since(start)
		return c, nil
	}
	s.mu.Unlock()
	fl, err := s.lockCopy(ctx, src, c)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ks.users, ks.lock = ks.users+1, fl
	s.mu.Unlock()
	s.touch(c.Dir)
	c.Took = time.Since(start)
	return c, nil
}

// lockCopy returns the shared lock on a valid copy of src, making the copy
// under the exclusive lock when it is missing. An eviction can slip in
// between the two locks; the loop then makes the copy again.
func (s *Store) lockCopy(ctx context.Context, src Source, c *Copy) (*flock.Flock, error) {
	for attempt := 0; ; attempt++ {
		fl := flock.New(s.lockPath(src.Key))
		if _, err := fl.TryRLockContext(ctx, s.opts.LockPoll); err != nil {
			return nil, fmt.Errorf("local copy %s: lock: %w", src.Key, err)
		}
		if s.valid(src.Key) {
			return fl, nil
		}
		fl.Unlock()
		if attempt == 3 {
			return nil, fmt.Errorf("local copy %s: evicted by another process as soon as it was made, %d times: raise COMFY_LOCAL_COPIES or COMFY_LOCAL_MAX_SIZE", src.Key, attempt)
		}
		if _, err := fl.TryLockContext(ctx, s.opts.LockPoll); err != nil {
			return nil, fmt.Errorf("local copy %s: lock: %w", src.Key, err)
		}
		if !s.valid(src.Key) {
			err := s.make(ctx, src, c)
			if err != nil {
				fl.Unlock()
				return nil, err
			}
		}
		fl.Unlock()
	}
}

// Info describes a local copy.
type Info struct {
	Key      string    `json:"key"`
	Label    string    `json:"label,omitempty"`
	Dir      string    `json:"dir"`
	Source   string    `json:"source"`
	Bytes    int64     `json:"content_bytes"`
	Files    int       `json:"files"`
	Made     time.Time `json:"made"`
	LastUsed time.Time `json:"last_used"`
	BootID   string    `json:"boot_id,omitempty"`
}

// List returns the copies in the store, valid or not, in no order.
func (s *Store) List() ([]Info, error) { return List(s.opts.Dir) }

// List returns the copies in a store's directory without opening the
// store (nothing is created): for reports.
func List(dir string) ([]Info, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range entries {
		if !e.IsDir() || !validKey(e.Name()) {
			continue
		}
		if in, err := readInfo(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, in)
		}
	}
	return out, nil
}

func (s *Store) info(key string) (Info, error) { return readInfo(s.Path(key)) }

func readInfo(dir string) (Info, error) {
	var in Info
	data, err := os.ReadFile(filepath.Join(dir, infoFile))
	if err != nil {
		return in, err
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return in, err
	}
	in.Dir = dir
	if fi, err := os.Stat(dir); err == nil {
		in.LastUsed = fi.ModTime()
	}
	return in, nil
}

// valid reports whether key's copy is complete and trustworthy: made in
// this boot (see make), for this key.
func (s *Store) valid(key string) bool {
	in, err := s.info(key)
	return err == nil && in.Key == key && in.BootID == bootID()
}

// touch records a use: eviction goes by the copy directory's mtime.
func (s *Store) touch(dir string) {
	now := time.Now()
	os.Chtimes(dir, now, now)
}

// validKey accepts what a build key looks like, so that a key never
// names a path outside the store or one of its own entries.
func validKey(k string) bool {
	if k == "" || len(k) > 128 || k[0] == '.' {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
