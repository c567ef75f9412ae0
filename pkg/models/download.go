package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// origin is one place a model's bytes come from.
type origin interface {
	// open returns the bytes from offset on, or from 0 (stream.start says
	// which) when the origin cannot resume or its content no longer
	// matches validator. Errors wrapped with permanent() end the source.
	open(ctx context.Context, offset int64, validator string) (*stream, error)
	// describe names the origin for messages, without credentials.
	describe() string
}

type stream struct {
	body  io.ReadCloser
	start int64 // offset of the first body byte
	total int64 // size of the whole file, -1 when unknown
	// validator identifies the content version (ETag, GCS generation,
	// mtime) so a resume after a restart never splices two versions.
	validator string
}

// partialMeta sits beside a partial download and lets another process
// resume it.
type partialMeta struct {
	Source    string `json:"source"`     // redacted, for people looking at the directory
	SourceKey string `json:"source_key"` // the validator belongs to this source
	Validator string `json:"validator,omitempty"`
	Total     int64  `json:"total"`
}

// dlJob is one download of one source into a partial file.
type dlJob struct {
	origin    origin
	sourceKey string
	want      string
	wantSize  int64
	item      string
	part      string
	meta      string
	// adopted is set when part was taken over from an abandoned download.
	adopted bool
}

type dlResult struct {
	digest string
	size   int64
	// resumed is set when the bytes came from more than one response or
	// from an earlier run: a checksum mismatch then earns one fresh try.
	resumed bool
}

// download streams the source into j.part while hashing it. An existing
// partial file is resumed: its prefix is hashed again rather than reusing
// a saved hash state, because after a kill -9 the file may hold bytes past
// the last saved state; one sequential read (about 2 GB/s) is always right.
// On return the partial file is complete and verified, or removed after a
// mismatch, or kept for a later resume after any other failure.
func (st *Store) download(ctx context.Context, j dlJob) (dlResult, error) {
	f, err := os.OpenFile(j.part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return dlResult{}, permanent(fmt.Errorf("open partial download: %w", err))
	}
	defer f.Close()
	meta := readMeta(j.meta)
	if meta.SourceKey != j.sourceKey {
		// Started from another source of the same digest: the bytes are
		// still good (the digest is checked) but the validator is not.
		meta = partialMeta{}
	}
	fi, err := f.Stat()
	if err != nil {
		return dlResult{}, permanent(err)
	}
	offset := fi.Size()
	if offset > 0 && meta.SourceKey == "" && j.want == "" {
		// Bytes of unknown origin and no checksum to judge them: a resume
		// could splice two versions of the file unnoticed.
		offset = 0
		if err := f.Truncate(0); err != nil {
			return dlResult{}, permanent(err)
		}
	}
	if j.wantSize > 0 && offset > j.wantSize {
		if err := f.Truncate(0); err != nil {
			return dlResult{}, permanent(err)
		}
		offset = 0
	}
	direct := !st.cfg.BufferedWrites && localDisk(f)
	if direct && offset%directAlign != 0 {
		// Resume from an aligned offset, so the rest can be written
		// directly; a few kB are fetched again.
		offset -= offset % directAlign
		if err := f.Truncate(offset); err != nil {
			return dlResult{}, permanent(err)
		}
	}
	h := sha256.New()
	res := dlResult{}
	if offset > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, offset)); err != nil {
			return dlResult{}, permanent(fmt.Errorf("read partial download: %w", err))
		}
		res.resumed = true
		st.log.Info().Str("item", j.item).Int64("offset", offset).Msg("resuming download")
		st.cfg.Progress.Report(progress.Event{Task: "download", Item: j.item, Done: offset, Total: meta.Total,
			Unit: "bytes", Message: fmt.Sprintf("resuming at %s", units.Bytes(offset))})
	}

	pool := newBlockPool()
	failures := 0
	for !(meta.Total > 0 && offset == meta.Total) {
		got, err := st.attempt(ctx, j, f, h, pool, direct, &offset, &meta, &res)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("%s: %w", j.origin.describe(), context.Cause(ctx))
		}
		if isPermanent(err) {
			return res, err
		}
		if got > 0 {
			failures = 0
		}
		failures++
		if failures >= st.cfg.MaxAttempts {
			return res, fmt.Errorf("%s: giving up after %d attempts without progress: %w", j.origin.describe(), failures, err)
		}
		delay := st.backoff(failures)
		st.log.Warn().Str("item", j.item).Err(st.red.error(err)).Int64("offset", offset).Int64("retry_in_ms", delay.Milliseconds()).Msg("download attempt failed")
		if err := sleep(ctx, delay); err != nil {
			return res, err
		}
	}
	if err := f.Sync(); err != nil {
		return res, permanent(fmt.Errorf("sync partial download: %w", err))
	}
	res.digest, res.size = hex.EncodeToString(h.Sum(nil)), offset
	var bad error
	if j.wantSize > 0 && res.size != j.wantSize {
		bad = &SizeError{Source: j.origin.describe(), Want: j.wantSize, Got: res.size}
	} else if j.want != "" && res.digest != j.want {
		bad = &ChecksumError{Source: j.origin.describe(), Want: j.want, Got: res.digest, Size: res.size}
	}
	if bad != nil {
		f.Close()
		os.Remove(j.part)
		os.Remove(j.meta)
		return res, bad
	}
	return res, nil
}

// attempt makes one request and appends what it receives. It returns the
// number of bytes received, which decides whether a failure counts
// against MaxAttempts.
func (st *Store) attempt(ctx context.Context, j dlJob, f *os.File, h hash.Hash, pool *blockPool, direct bool, offset *int64, meta *partialMeta, res *dlResult) (int64, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := st.cfg.IdleTimeout
	timer := time.AfterFunc(idle, func() { cancel(errStalled) })
	defer timer.Stop()
	stalled := func(err error) error {
		if context.Cause(actx) == errStalled && ctx.Err() == nil {
			return fmt.Errorf("%s: %w (%s)", j.origin.describe(), errStalled, idle)
		}
		return err
	}

	s, err := j.origin.open(actx, *offset, meta.Validator)
	if err != nil {
		return 0, stalled(err)
	}
	defer s.body.Close()
	if s.start != *offset {
		if s.start != 0 {
			return 0, fmt.Errorf("%s: asked for bytes from %d, got them from %d", j.origin.describe(), *offset, s.start)
		}
		st.log.Info().Str("item", j.item).Int64("offset", *offset).Msg("source cannot resume or changed; restarting from 0")
		if err := f.Truncate(0); err != nil {
			return 0, permanent(err)
		}
		h.Reset()
		*offset = 0
	}
	if s.start > 0 {
		res.resumed = true
	}
	if s.total >= 0 && j.wantSize > 0 && s.total != j.wantSize {
		return 0, permanent(&SizeError{Source: j.origin.describe(), Want: j.wantSize, Got: s.total})
	}
	if s.validator != meta.Validator || s.total != meta.Total || meta.SourceKey != j.sourceKey {
		*meta = partialMeta{Source: j.origin.describe(), SourceKey: j.sourceKey, Validator: s.validator, Total: s.total}
		if err := writeMeta(j.meta, *meta); err != nil {
			return 0, permanent(err)
		}
	}
	if _, err := f.Seek(*offset, io.SeekStart); err != nil {
		return 0, permanent(err)
	}

	sk := newSink(h, f, pool, *offset, direct)
	got, rerr := st.pump(j, s, sk, timer, offset)
	if err := sk.close(); err != nil {
		return got, permanent(err)
	}
	if rerr != nil {
		return got, stalled(rerr)
	}
	if s.total >= 0 && *offset != s.total {
		return got, fmt.Errorf("%s: body ended at byte %d of %d", j.origin.describe(), *offset, s.total)
	}
	if s.total < 0 {
		// Now the size is known, record it so a re-run does not refetch.
		meta.Total = *offset
	}
	return got, nil
}

// pump reads the body into the sink until EOF, an error or a write error.
// It fills whole blocks: one hand-off per megabyte instead of one per
// socket read keeps the goroutines from ping-ponging.
func (st *Store) pump(j dlJob, s *stream, sk *sink, timer *time.Timer, offset *int64) (int64, error) {
	var got int64
	last := time.Now()
	for sk.err() == nil {
		b := sk.get()
		var rerr error
		b.n = 0
		for b.n < len(b.b) && rerr == nil {
			var n int
			n, rerr = s.body.Read(b.b[b.n:])
			if n > 0 {
				timer.Reset(st.cfg.IdleTimeout)
				b.n += n
				*offset += int64(n)
				got += int64(n)
				if now := time.Now(); now.Sub(last) >= st.cfg.ProgressInterval {
					last = now
					st.cfg.Progress.Report(progress.Event{Task: "download", Item: j.item, Done: *offset, Total: s.total, Unit: "bytes"})
				}
			}
		}
		sk.put(b)
		if rerr == io.EOF {
			return got, nil
		}
		if rerr != nil {
			return got, st.red.error(fmt.Errorf("%s: read body at byte %d: %w", j.origin.describe(), *offset, rerr))
		}
	}
	return got, nil
}

func (st *Store) backoff(failures int) time.Duration {
	d := st.cfg.BackoffBase
	for i := 1; i < failures && d < st.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, st.cfg.BackoffMax)
	// Jitter keeps N workers that failed together from retrying together.
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func readMeta(path string) partialMeta {
	var m partialMeta
	data, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(data, &m) != nil {
		return partialMeta{}
	}
	return m
}

func writeMeta(path string, m partialMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("write download state: %w", err)
	}
	return nil
}
