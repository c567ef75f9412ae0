package comfy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// downloadAll fetches outputs, a few at a time, filling Size and SHA256 and
// either Data (kept in memory while the total fits memBudget bytes) or Path
// (a file under dir). Files missing on the server are collected into one
// *missingOutputError; any other failure stops the rest.
func (c *Client) downloadAll(ctx context.Context, outs []Output, dir string, memBudget int64) error {
	used := map[string]bool{}
	for i := range outs {
		p, err := localPath(dir, outs[i], used)
		if err != nil {
			return err
		}
		outs[i].Path = p
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		missing  []Output
		budget   atomic.Int64
	)
	budget.Store(memBudget)
	next := make(chan int)
	for range min(c.cfg.DownloadConcurrency, len(outs)) {
		wg.Go(func() {
			for i := range next {
				got, err := c.download(ctx, outs[i], &budget)
				mu.Lock()
				switch {
				case errors.Is(err, errNotFound):
					missing = append(missing, outs[i])
					outs[i].Path = ""
				case err != nil && firstErr == nil:
					firstErr = err
					cancel()
				case err == nil:
					outs[i].Size, outs[i].SHA256, outs[i].Data = got.size, got.sha256, got.data
					if got.data != nil {
						outs[i].Path = ""
					}
				}
				mu.Unlock()
			}
		})
	}
feed:
	for i := range outs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if len(missing) > 0 {
		return &missingOutputError{Outputs: missing}
	}
	return ctx.Err()
}

var errNotFound = errors.New("not found")

// copyBufSize is the size of each streaming buffer: large enough that a
// 1 MB image takes a handful of syscalls, small enough to never hold a file
// in memory.
const copyBufSize = 256 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// pipelinedCopy copies src to dst with the network read and the disk write
// overlapping: one goroutine reads the socket while this one writes the
// file, which on loopback nearly halves the time of a large download. The
// reading goroutine ends before pipelinedCopy returns; the caller closes src
// if dst fails so a read blocked on the network is released.
func pipelinedCopy(dst io.Writer, src io.ReadCloser) (int64, error) {
	pr, pw := io.Pipe()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		_, err := io.CopyBuffer(pw, struct{ io.Reader }{src}, *bp)
		pw.CloseWithError(err)
	}()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// Hide dst's ReadFrom so the pooled buffer is used, not a fresh one.
	n, err := io.CopyBuffer(struct{ io.Writer }{dst}, pr, *bp)
	if err != nil {
		pr.CloseWithError(err)
		src.Close()
	}
	<-readDone
	return n, err
}

// fetched is one downloaded output: in memory (data) or on disk.
type fetched struct {
	size   int64
	sha256 string
	data   []byte
}

// download fetches one output from /view, hashing it on the way. An output
// whose announced size fits in what is left of budget is read into memory:
// a job returning base64 then never touches the disk for it. Others stream
// into a temp file beside o.Path and are renamed into place. Outputs are
// local scratch files for the job, so nothing is fsynced: a crash loses the
// job anyway, and the rename alone guarantees no half-written file is ever
// seen at o.Path.
func (c *Client) download(ctx context.Context, o Output, budget *atomic.Int64) (fetched, error) {
	q := url.Values{"filename": {o.Filename}, "subfolder": {o.Subfolder}, "type": {o.Type}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/view", q), nil)
	if err != nil {
		return fetched{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fetched{}, fmt.Errorf("download %s: %w", o.Filename, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fetched{}, fmt.Errorf("download %s: %w", o.Filename, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return fetched{}, &HTTPError{Op: "GET /view " + o.Filename, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	h := sha256.New()
	if n := resp.ContentLength; n >= 0 && reserve(budget, n) {
		data, err := readHashed(resp.Body, n, h)
		if err != nil {
			budget.Add(n)
			return fetched{}, fmt.Errorf("download %s: %w", o.Filename, err)
		}
		return fetched{size: n, sha256: hex.EncodeToString(h.Sum(nil)), data: data}, nil
	}
	n, err := downloadFile(resp.Body, o.Path, h)
	if err != nil {
		return fetched{}, fmt.Errorf("download %s: %w", o.Filename, err)
	}
	return fetched{size: n, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

// reserve takes n bytes from budget if that many are left.
func reserve(budget *atomic.Int64, n int64) bool {
	for {
		left := budget.Load()
		if n > left {
			return false
		}
		if budget.CompareAndSwap(left, left-n) {
			return true
		}
	}
}

// readChunk bounds each read, so the hasher can start on data while the
// rest is still arriving.
const readChunk = 128 << 10

// readHashed reads exactly n bytes of body into memory while another
// goroutine hashes what has arrived: on loopback the transfer and the
// hashing take about as long as each other, so they overlap.
func readHashed(body io.Reader, n int64, h hash.Hash) ([]byte, error) {
	data := make([]byte, n)
	var filled atomic.Int64
	wake := make(chan struct{}, 1)
	finished := make(chan struct{})
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		var done int64
		for {
			select {
			case <-wake:
			case <-finished:
			}
			end := filled.Load()
			h.Write(data[done:end])
			done = end
			if done == n {
				return
			}
			select {
			case <-finished:
				if filled.Load() == done {
					return
				}
			default:
			}
		}
	}()
	var err error
	for off := int64(0); off < n; {
		k, rerr := body.Read(data[off:min(off+readChunk, n)])
		off += int64(k)
		if k > 0 {
			filled.Store(off)
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		if rerr != nil && off < n {
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			err = rerr
			break
		}
	}
	close(finished)
	<-hashed
	if err != nil {
		return nil, err
	}
	return data, nil
}

// downloadFile streams body into a temp file beside dst, hashing it, and
// renames it into place.
func downloadFile(body io.ReadCloser, dst string, h hash.Hash) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return 0, err
	}
	n, err := pipelinedCopy(io.MultiWriter(f, h), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, err
	}
	return n, nil
}
