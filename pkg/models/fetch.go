package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// Fetch returns the blob for req, downloading it when the store lacks it.
// A cache hit (by req.SHA256, or by the source index when no digest is
// given) does no network I/O. Sources are tried in order; the error of a
// total failure names each source's problem.
func (st *Store) Fetch(ctx context.Context, req Request) (Blob, error) {
	if err := st.ensureDirs(); err != nil {
		return Blob{}, err
	}
	start := time.Now()
	b, item, err := st.fetch(ctx, req)
	if err != nil {
		outcome := "failed"
		if ctx.Err() != nil {
			outcome = "interrupted"
		}
		st.cfg.Progress.Report(progress.Event{Task: "download", Item: item, Unit: "bytes", Finished: true, Message: outcome, Elapsed: time.Since(start)})
		return Blob{}, st.red.error(fmt.Errorf("model %s: %w", item, err))
	}
	st.markUsed(b.SHA256)
	msg := "cached"
	if b.Downloaded {
		msg = "downloaded"
	}
	st.cfg.Progress.Report(progress.Event{Task: "download", Item: item, Done: b.Size, Total: b.Size, Unit: "bytes", Finished: true, Message: msg, Elapsed: time.Since(start)})
	return b, nil
}

// Lookup says whether req is already in the store. It does no network I/O
// and takes no lock: for plans (--dry-run) and offline checks.
func (st *Store) Lookup(req Request) (Blob, bool, error) {
	_, want, srcs, err := st.prepare(req)
	if err != nil {
		return Blob{}, false, st.red.error(err)
	}
	b, ok := st.lookup(want, req.Size, srcs)
	return b, ok, nil
}

// LocalSize is the size of a file:// or local-path source, for plans; 0
// for any other source or one that cannot be read. It does no network I/O.
func (st *Store) LocalSize(source string) int64 {
	src, err := ParseSource(source)
	if err != nil || src.Kind != KindFile {
		return 0
	}
	if src, err = st.resolveLocal(src); err != nil {
		return 0
	}
	fi, err := os.Stat(src.Path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	return fi.Size()
}

func (st *Store) prepare(req Request) (item, want string, srcs []Source, err error) {
	item = req.Item
	for _, s := range append([]string{req.Source}, req.Alternatives...) {
		src, err := ParseSource(s)
		if err != nil {
			return itemOr(item, req.Source), "", nil, err
		}
		if src, err = st.resolveLocal(src); err != nil {
			return itemOr(item, req.Source), "", nil, err
		}
		srcs = append(srcs, src)
	}
	if item == "" {
		item = itemOr(srcs[0].FileName(), srcs[0].Redacted())
	}
	want, err = normalizeDigest(req.SHA256)
	return item, want, srcs, err
}

func itemOr(item, fallback string) string {
	if item != "" {
		return item
	}
	return RedactString(fallback)
}

func (st *Store) lookup(want string, size int64, srcs []Source) (Blob, bool) {
	if want != "" {
		if n, ok := st.blobSize(want, size); ok {
			return Blob{Path: st.blobPath(want), SHA256: want, Size: n}, true
		}
		return Blob{}, false
	}
	for _, src := range srcs {
		if e, ok := st.lookupIndex(src); ok && (size <= 0 || e.Size == size) {
			return Blob{Path: st.blobPath(e.SHA256), SHA256: e.SHA256, Size: e.Size, Source: e.Source}, true
		}
	}
	return Blob{}, false
}

func (st *Store) blobSize(digest string, size int64) (int64, bool) {
	if !st.blobOK(digest, size) {
		return 0, false
	}
	fi, err := os.Stat(st.blobPath(digest))
	if err != nil {
		return 0, false
	}
	return fi.Size(), true
}

func (st *Store) fetch(ctx context.Context, req Request) (Blob, string, error) {
	item, want, srcs, err := st.prepare(req)
	if err != nil {
		return Blob{}, item, err
	}
	if b, ok := st.lookup(want, req.Size, srcs); ok {
		return b, item, nil
	}
	var errs []error
	for i, src := range srcs {
		if st.cfg.Offline && src.Kind != KindFile {
			errs = append(errs, fmt.Errorf("%s: %w", src.Redacted(), ErrOffline))
			continue
		}
		b, err := st.fetchFrom(ctx, src, want, req.Size, item)
		if err == nil {
			return b, item, nil
		}
		if ctx.Err() != nil {
			return Blob{}, item, err
		}
		errs = append(errs, err)
		if i+1 < len(srcs) {
			st.log.Warn().Str("item", item).Err(st.red.error(err)).Msg("model source failed; trying the next one")
		}
	}
	if len(errs) == 1 {
		return Blob{}, item, errs[0]
	}
	return Blob{}, item, fmt.Errorf("all %d sources failed: %w", len(errs), errors.Join(errs...))
}

// fetchFrom downloads src into a private partial file (see partial.go),
// under a lock that makes processes on one host wait for each other. The
// lock and the partial files are named by the expected digest when there
// is one (any source of the same bytes may resume them), else by the
// source.
func (st *Store) fetchFrom(ctx context.Context, src Source, want string, size int64, item string) (Blob, error) {
	key := "s-" + hashKey(src.Canonical())[:40]
	if want != "" {
		key = "d-" + want
	}
	unlock, err := st.cfg.Locks.Lock(ctx, filepath.Join(st.dir, "locks", key+".lock"), func() {
		st.log.Info().Str("item", item).Msg("another process is fetching this model; waiting for it")
		st.cfg.Progress.Report(progress.Event{Task: "download", Item: item, Unit: "bytes", Message: "waiting for another process"})
	})
	if err != nil {
		if ctx.Err() != nil {
			return Blob{}, context.Cause(ctx)
		}
		return Blob{}, fmt.Errorf("lock model store entry: %w", err)
	}
	defer unlock()

	// The process we waited for may have fetched it, or a process on
	// another host (which our lock does not stop) may be fetching it.
	found := func() (Blob, bool) { return st.lookup(want, size, []Source{src}) }
	if b, ok := found(); ok {
		return b, nil
	}
	if st.awaitOthers(ctx, key, item, func() bool { _, ok := found(); return ok }) {
		if b, ok := found(); ok {
			return b, nil
		}
	}
	var before os.FileInfo
	if src.Kind == KindFile {
		if before, err = os.Stat(src.Path); err != nil {
			return Blob{}, fmt.Errorf("local model file: %w", err)
		}
	}
	o, err := st.origin(src)
	if err != nil {
		return Blob{}, err
	}
	j := dlJob{origin: o, sourceKey: hashKey(src.Canonical()), want: want, wantSize: size, item: item}
	st.log.Info().Str("item", item).Str("source", src.Redacted()).Msg("fetching model")
	res, err := st.downloadPrivately(ctx, key, j)
	if errors.Is(err, errClaimed) && ctx.Err() == nil {
		// A process that thought this one dead took its file: start anew.
		st.log.Warn().Str("item", item).Msg("another process took over this download; downloading again")
		res, err = st.downloadPrivately(ctx, key, j)
	}
	if err != nil {
		return Blob{}, err
	}
	if err := st.writeIndex(src, res.digest, res.size, before); err != nil {
		return Blob{}, err
	}
	return Blob{Path: st.blobPath(res.digest), SHA256: res.digest, Size: res.size, Source: st.red.string(src.Canonical()), Downloaded: true}, nil
}

// downloadPrivately runs j in a part file of its own (an abandoned one of
// key taken over, or a new one), keeping its lease fresh, and publishes
// the verified result as the blob of its digest.
func (st *Store) downloadPrivately(ctx context.Context, key string, j dlJob) (dlResult, error) {
	res, err := st.downloadOnce(ctx, key, j, true)
	var ce *ChecksumError
	if errors.As(err, &ce) && res.resumed {
		// The prefix came from an earlier run; the file may have changed
		// in between. A fresh download decides.
		st.log.Warn().Str("item", j.item).Msg("checksum mismatch after a resumed download; downloading again from the start")
		res, err = st.downloadOnce(ctx, key, j, false)
	}
	return res, err
}

// downloadOnce is one download into a part file of its own: taken over
// from an abandoned download when adopt allows, else new.
func (st *Store) downloadOnce(ctx context.Context, key string, j dlJob, adopt bool) (dlResult, error) {
	pf, err := st.claimPartial(key, adopt)
	if err != nil {
		return dlResult{}, err
	}
	j.part, j.meta, j.adopted = pf.part, pf.meta, pf.adopted
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := fsutil.Heartbeat(dctx, j.part, st.cfg.Lease.Refresh, func() { cancel(errClaimed) })
	res, err := st.download(dctx, j)
	stop()
	if err != nil {
		// Kept for a resume (unless the bytes were bad): whoever fetches
		// this model next, here or on another host, may take it at once.
		_ = fsutil.MarkAbandoned(j.part)
		return res, err
	}
	if err := st.publishBlob(j.part, res.digest, res.size); err != nil {
		return res, err
	}
	os.Remove(j.meta)
	return res, nil
}

func (st *Store) origin(src Source) (origin, error) {
	switch src.Kind {
	case KindHF, KindCivitai, KindHTTP:
		return &httpOrigin{st: st, src: src}, nil
	case KindGCS:
		return &gcsOrigin{st: st, src: src}, nil
	case KindFile:
		return &fileOrigin{src: src}, nil
	}
	return nil, fmt.Errorf("unsupported source kind %q", src.Kind)
}
