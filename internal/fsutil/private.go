package fsutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Random returns 16 hex characters from the system's random source. Names
// built from it are private to their writer: processes on different hosts
// sharing a volume may all be pid 1, so a pid (or a counter) would collide.
func Random() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on Linux; a clock is the next best thing.
		return hex.EncodeToString([]byte(time.Now().Format("150405.000000")))[:16]
	}
	return hex.EncodeToString(b[:])
}

// TempSuffix marks a private temp name: "<name>.tmp-<Random>".
const TempSuffix = ".tmp-"

// TempPath returns a private temp name next to path: "." + base + ".tmp-"
// + 16 random hex characters, in path's directory.
func TempPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+TempSuffix+Random())
}

// IsTempName reports whether name is a private temp name made by TempPath
// (or by an earlier release, whose random part was decimal).
func IsTempName(name string) bool {
	i := strings.LastIndex(name, TempSuffix)
	if !strings.HasPrefix(name, ".") || i < 0 {
		return false
	}
	rest := name[i+len(TempSuffix):]
	return rest != "" && strings.Trim(rest, "0123456789abcdef") == ""
}

// Touch sets path's modification time to now: the lease of a private
// entry (a staging directory, a partial download) that its writer keeps
// fresh while it lives, and of a shared one each user refreshes.
func Touch(path string) error {
	now := time.Now()
	return os.Chtimes(path, now, now)
}

// TouchIfOlder touches path when its modification time is older than age,
// so a lease refreshed on every job costs a stat, not a write.
func TouchIfOlder(path string, age time.Duration) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if time.Since(fi.ModTime()) < age {
		return nil
	}
	return Touch(path)
}

// Abandoned reports whether path exists and has not been touched for
// expiry: its writer is gone, and anyone may claim or delete it. Missing
// paths are not abandoned (there is nothing to claim).
func Abandoned(path string, expiry time.Duration, now time.Time) bool {
	fi, err := os.Lstat(path)
	return err == nil && now.Sub(fi.ModTime()) >= expiry
}

// Heartbeat keeps path's lease fresh every interval until stop is called
// or ctx ends. lost, when not nil, is called once if path disappears or is
// replaced (another process claimed it as abandoned): the writer must then
// stop using it. stop waits for the goroutine.
func Heartbeat(ctx context.Context, path string, interval time.Duration, lost func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	first, _ := os.Stat(path)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			fi, err := os.Stat(path)
			if err != nil && errors.Is(err, fs.ErrNotExist) || err == nil && first != nil && !os.SameFile(first, fi) {
				if lost != nil {
					lost()
				}
				return
			}
			_ = Touch(path)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// MarkAbandoned sets path's modification time far in the past, so the
// next process that looks may claim it at once: its writer gave up (a
// failed realize keeps its staging directory for the next one to finish).
func MarkAbandoned(path string) error {
	old := time.Unix(1, 0)
	return os.Chtimes(path, old, old)
}
