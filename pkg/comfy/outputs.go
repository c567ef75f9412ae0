package comfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

type fileRef struct {
	Filename  string `json:"filename"`
	Subfolder string `json:"subfolder"`
	Type      string `json:"type"`
}

// collectOutputs lists every file in a history's outputs: any object with a
// filename, under any key of any node's UI dict (images, gifs, videos,
// audio, 3D files, ...), either in a list or on its own. Non-file values
// (text, animated flags) are skipped. Order: node id, key, position. A file
// listed twice is listed once.
func collectOutputs(outputs map[string]json.RawMessage, cached map[string]bool, skipTemp bool) []Output {
	ids := make([]string, 0, len(outputs))
	for id := range outputs {
		ids = append(ids, id)
	}
	sortNodeIDs(ids)
	seen := map[fileRef]bool{}
	var out []Output
	for _, id := range ids {
		var ui map[string]json.RawMessage
		if json.Unmarshal(outputs[id], &ui) != nil {
			continue
		}
		keys := make([]string, 0, len(ui))
		for k := range ui {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			var items []json.RawMessage
			if json.Unmarshal(ui[k], &items) != nil {
				items = []json.RawMessage{ui[k]}
			}
			for _, raw := range items {
				var f fileRef
				if json.Unmarshal(raw, &f) != nil || f.Filename == "" {
					continue
				}
				if f.Type == "" {
					f.Type = "output" // /view's default
				}
				if seen[f] || (skipTemp && f.Type == "temp") {
					continue
				}
				seen[f] = true
				out = append(out, Output{NodeID: id, Kind: k, Filename: f.Filename, Subfolder: f.Subfolder, Type: f.Type, Cached: cached[id]})
			}
		}
	}
	return out
}

// missingOutputError lists outputs /view answered 404 for.
type missingOutputError struct {
	Outputs []Output
}

func (e *missingOutputError) Error() string {
	names := make([]string, len(e.Outputs))
	for i, o := range e.Outputs {
		names[i] = path(o.Subfolder, o.Filename) + " (" + o.Type + ")"
	}
	return fmt.Sprintf("ComfyUI no longer has output files %s", strings.Join(names, ", "))
}

func (e *missingOutputError) allCached() bool {
	for _, o := range e.Outputs {
		if !o.Cached {
			return false
		}
	}
	return len(e.Outputs) > 0
}

func (e *missingOutputError) nodes() []string {
	var ids []string
	for _, o := range e.Outputs {
		if !slices.Contains(ids, o.NodeID) {
			ids = append(ids, o.NodeID)
		}
	}
	return ids
}

func path(sub, name string) string {
	if sub == "" {
		return name
	}
	return sub + "/" + name
}

// localPath is where an output lands under dir: subfolder/filename, with
// names ComfyUI (or a custom node) supplied checked so nothing escapes dir,
// and a numeric suffix when two outputs would share a path.
func localPath(dir string, o Output, used map[string]bool) (string, error) {
	if o.Filename == "." || o.Filename == ".." || strings.ContainsAny(o.Filename, "/\\\x00") {
		return "", fmt.Errorf("output file name %q from node %s is not a plain file name", o.Filename, o.NodeID)
	}
	sub := filepath.Clean(filepath.FromSlash("/" + o.Subfolder))[1:]
	if strings.Contains(o.Subfolder, "..") || strings.ContainsRune(o.Subfolder, 0) {
		return "", fmt.Errorf("output subfolder %q from node %s is not allowed", o.Subfolder, o.NodeID)
	}
	p := filepath.Join(dir, sub, o.Filename)
	ext := filepath.Ext(p)
	for i := 1; used[p]; i++ {
		p = filepath.Join(dir, sub, strings.TrimSuffix(o.Filename, ext)+"_"+strconv.Itoa(i)+ext)
	}
	used[p] = true
	return p, nil
}

// downloadAll fetches outputs into dir, a few at a time, filling Path and
// Size. Files missing on the server are collected into one
// *missingOutputError; any other failure stops the rest.
func (c *Client) downloadAll(ctx context.Context, outs []Output, dir string) error {
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
	)
	next := make(chan int)
	for range min(c.cfg.DownloadConcurrency, len(outs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				n, err := c.download(ctx, outs[i], outs[i].Path)
				mu.Lock()
				switch {
				case errors.Is(err, errNotFound):
					missing = append(missing, outs[i])
					outs[i].Path = ""
				case err != nil && firstErr == nil:
					firstErr = err
					cancel()
				case err == nil:
					outs[i].Size = n
				}
				mu.Unlock()
			}
		}()
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

// download streams /view into a temp file beside dst and renames it into
// place. Outputs are local scratch files for the job, so the file is not
// fsynced: a crash loses the job anyway, and the rename alone guarantees no
// half-written file is ever seen at dst.
func (c *Client) download(ctx context.Context, o Output, dst string) (int64, error) {
	q := url.Values{"filename": {o.Filename}, "subfolder": {o.Subfolder}, "type": {o.Type}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/view", q), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", o.Filename, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, fmt.Errorf("download %s: %w", o.Filename, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return 0, &HTTPError{Op: "GET /view " + o.Filename, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return 0, err
	}
	n, err := pipelinedCopy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, fmt.Errorf("download %s: %w", o.Filename, err)
	}
	return n, nil
}
