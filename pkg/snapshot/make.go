package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"
)

// SpaceError is a local disk too small for a copy even after evicting
// every copy not in use: the caller runs the build from the volume.
type SpaceError struct {
	Dir        string
	Need, Free int64
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("local copy: %s has %d MiB free, the build needs about %d MiB: free space there or point COMFY_LOCAL_DIR at a larger disk",
		e.Dir, e.Free>>20, e.Need>>20)
}

// make unpacks src into a private staging directory and renames it into
// place; the caller holds key's exclusive lock. A snapshot found damaged is
// removed and packed again from the build while unpacking.
func (s *Store) make(ctx context.Context, src Source, c *Copy) error {
	log := s.opts.Logger.With().Str("build", src.Key).Str("version_id", src.Label).Logger()
	s.sweep(src.Key)
	need := int64(-1)
	fi, statErr := os.Stat(src.Snapshot)
	if statErr == nil {
		if f, err := os.Open(src.Snapshot); err == nil {
			if ft, err := readFooter(f, fi.Size()); err == nil {
				// Content plus a block per entry for what rounds up.
				need = ft.content + ft.entries*4096
			}
			f.Close()
		}
	}
	if err := s.evict(src.Key, need, true); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(s.opts.Dir, ".unpack-"+src.Key+"-")
	if err != nil {
		return fmt.Errorf("local copy: %w", err)
	}
	defer os.RemoveAll(staging) // gone after the rename; else a failed unpack
	uopts := UnpackOptions{Key: src.Key, Source: src.Build}
	pack := src.Pack
	pack.Meta.Key, pack.Meta.Label = src.Key, src.Label
	var meta Meta
	switch {
	case statErr == nil:
		meta, c.Stats, err = UnpackFile(ctx, src.Snapshot, staging, uopts)
		if err == nil || !IsCorrupt(err) {
			break
		}
		log.Warn().Err(err).Msg("the build's snapshot is damaged: packing it again from the build")
		if derr := Discard(src.Snapshot, fi); derr != nil {
			log.Warn().Err(derr).Msg("removing the damaged snapshot")
		}
		if err = resetDir(staging); err != nil {
			return err
		}
		fallthrough
	default:
		var pubErr error
		meta, c.Stats, pubErr, err = PublishAndUnpack(ctx, src.Build, src.Snapshot, pack, staging, uopts)
		c.Packed = err == nil
		if pubErr != nil {
			log.Warn().Err(pubErr).Msg("the build's snapshot could not be written to the volume; this copy is made, other workers pack their own")
		}
	}
	if err != nil {
		return fmt.Errorf("local copy of %s: %w", src.Build, err)
	}
	if src.Fix != nil {
		if err := src.Fix(staging); err != nil {
			return fmt.Errorf("local copy of %s: %w", src.Build, err)
		}
	}
	in := Info{Key: src.Key, Label: firstNonEmpty(src.Label, meta.Label), Source: src.Build, Bytes: c.Stats.Content,
		Files: c.Stats.Files, Made: time.Now().UTC(), BootID: bootID()}
	data, _ := json.MarshalIndent(in, "", "  ")
	if err := os.WriteFile(filepath.Join(staging, infoFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("local copy: %w", err)
	}
	if in.BootID == "" {
		// No boot id to tell a copy made before a crash of the machine:
		// make it durable before it gets its name.
		if err := syncFS(staging); err != nil {
			return fmt.Errorf("local copy: %w", err)
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil { // a copy of an earlier boot
		return fmt.Errorf("local copy: %w", err)
	}
	if err := os.Rename(staging, c.Dir); err != nil {
		return fmt.Errorf("local copy: %w", err)
	}
	c.Made = true
	log.Info().Str("dir", c.Dir).Int("files", c.Stats.Files).Int64("bytes", c.Stats.Content).Bool("packed", c.Packed).Msg("local copy made")
	return s.evict(src.Key, 0, false)
}

// sweep removes what an unpack of key left when its process died: the
// caller holds key's exclusive lock, so no one is writing there.
func (s *Store) sweep(key string) {
	left, _ := filepath.Glob(filepath.Join(s.opts.Dir, ".unpack-"+key+"-*"))
	for _, p := range left {
		os.RemoveAll(p)
	}
}

func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Mkdir(dir, 0o700)
}

// evict removes the least recently used copies not in use, here or in
// another process, while there are more than Keep (room for one more when
// making), more than MaxBytes, or less free space than need. It fails only
// when need cannot be met.
func (s *Store) evict(except string, need int64, making bool) error {
	infos, err := s.List()
	if err != nil {
		return fmt.Errorf("local copies: %w", err)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].LastUsed.Before(infos[j].LastUsed) })
	keep := s.opts.Keep
	if making {
		keep--
	}
	var total int64
	for _, in := range infos {
		total += in.Bytes
	}
	count := len(infos)
	over := func() bool {
		return count > keep || s.opts.MaxBytes > 0 && total+max(need, 0) > s.opts.MaxBytes ||
			need > 0 && s.free(s.opts.Dir) < need
	}
	for _, in := range infos {
		if !over() {
			break
		}
		if in.Key == except || s.inUse(in.Key) {
			continue
		}
		if s.remove(in.Key) {
			s.opts.Logger.Info().Str("build", in.Key).Str("version_id", in.Label).Int64("bytes", in.Bytes).Msg("local copy evicted")
			count--
			total -= in.Bytes
		}
	}
	if free := s.free(s.opts.Dir); need > 0 && free < need {
		return &SpaceError{Dir: s.opts.Dir, Need: need, Free: free}
	}
	return nil
}

// remove evicts key's copy unless another process holds its lock. The
// copy is renamed away first, so no one finds it half deleted.
func (s *Store) remove(key string) bool {
	fl := flock.New(s.lockPath(key))
	if ok, err := fl.TryLock(); err != nil || !ok {
		return false
	}
	defer fl.Unlock()
	gone, err := os.MkdirTemp(s.opts.Dir, ".evict-")
	if err != nil {
		return false
	}
	os.Remove(gone)
	if err := os.Rename(s.Path(key), gone); err != nil {
		return false
	}
	os.RemoveAll(gone)
	return true
}

// Clear removes every copy no process uses, and leftovers of unpacks and
// evictions that were interrupted; it returns the keys removed.
func (s *Store) Clear() ([]string, error) {
	infos, err := s.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, in := range infos {
		if !s.inUse(in.Key) && s.remove(in.Key) {
			removed = append(removed, in.Key)
		}
	}
	entries, _ := os.ReadDir(s.opts.Dir)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".evict-") {
			os.RemoveAll(filepath.Join(s.opts.Dir, name))
		}
		if key, ok := stagingKey(name); ok {
			fl := flock.New(s.lockPath(key))
			if ok, err := fl.TryLock(); err == nil && ok {
				os.RemoveAll(filepath.Join(s.opts.Dir, name))
				fl.Unlock()
			}
		}
	}
	return removed, nil
}

// stagingKey is the key of an ".unpack-<key>-<random>" directory.
func stagingKey(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, ".unpack-")
	i := strings.LastIndex(rest, "-")
	if !ok || i <= 0 {
		return "", false
	}
	return rest[:i], true
}

func freeSpace(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 1 << 62 // unknown: let the unpack find out
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// bootID identifies this boot of the machine. A copy is renamed into place
// without an fsync of its thousands of files (that would cost more than
// the unpack): a process that dies leaves the page cache intact, and a
// copy made in an earlier boot, which a crash of the machine could have
// left with empty files, is not trusted but made again.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
