package endpoint

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// OutputWriter writes the files of a job result into a directory.
type OutputWriter struct {
	// HTTPClient downloads URL outputs; default http.DefaultClient. The
	// RunPod API key is never sent with these requests.
	HTTPClient *http.Client
	// Timeout bounds one download; default DefaultDownloadTimeout.
	Timeout time.Duration
	// MaxBytes bounds one downloaded file; default DefaultMaxDownload.
	MaxBytes int64
	Logger   zerolog.Logger
}

// WriteOutputs writes the files of a result into outDir with c's download
// settings. See OutputWriter.WriteOutputs.
func (c *Client) WriteOutputs(ctx context.Context, output json.RawMessage, outDir string) ([]string, error) {
	return c.Writer().WriteOutputs(ctx, output, outDir)
}

// WriteOutputs decodes the base64 outputs and downloads the URL outputs of
// a result into outDir (created if missing) and returns the paths written,
// in the result's order. Names are sanitised and never replace an existing
// file (a taken name gets "-1", "-2", ...). Each file appears at its path
// only once complete and, when the result gives them, with the right sha256
// and size. A file that fails does not stop the others; the errors are
// joined. A result without files in a known shape writes nothing.
func (w *OutputWriter) WriteOutputs(ctx context.Context, output json.RawMessage, outDir string) ([]string, error) {
	entries, err := parseOutputs(output)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	var paths []string
	var errs []error
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		name := safeName(e.Name)
		if name == "" {
			name = "output-" + strconv.Itoa(i+1)
		}
		if name != e.Name {
			w.Logger.Warn().Str("given", e.Name).Str("written_as", name).Msg("output file name sanitised")
		}
		p, err := w.writeOne(ctx, e, outDir, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		paths = append(paths, p)
	}
	if len(paths) > 0 {
		if err := fsutil.SyncDir(outDir); err != nil {
			errs = append(errs, err)
		}
	}
	return paths, errors.Join(errs...)
}

func (w *OutputWriter) writeOne(ctx context.Context, e fileEntry, dir, name string) (_ string, err error) {
	if e.Base64 == "" && e.URL == "" {
		return "", fmt.Errorf("output %s: the result has neither base64 data nor a URL for it", name)
	}
	f, err := os.CreateTemp(dir, "."+name+".part-*")
	if err != nil {
		return "", fmt.Errorf("output %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	var n int64
	if e.Base64 != "" {
		n, err = copyBase64(io.MultiWriter(f, h), e.Base64)
	} else {
		n, err = w.download(ctx, io.MultiWriter(f, h), e.URL)
	}
	if err != nil {
		return "", fmt.Errorf("output %s: %w", name, err)
	}
	if err := verify(name, e, n, h); err != nil {
		return "", err
	}
	if err = f.Chmod(0o644); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", fmt.Errorf("output %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return "", fmt.Errorf("output %s: %w", name, err)
	}
	final, err := claim(tmp, dir, name)
	if err != nil {
		return "", fmt.Errorf("output %s: %w", name, err)
	}
	return final, nil
}

// verify checks the content against the result's sha256 and size.
func verify(name string, e fileEntry, n int64, h hash.Hash) error {
	if e.Size != nil && *e.Size != n {
		return &ChecksumError{Name: name, Want: fmt.Sprintf("%d bytes", *e.Size), Got: fmt.Sprintf("%d bytes", n)}
	}
	if e.SHA256 == "" {
		return nil
	}
	want := strings.ToLower(strings.TrimPrefix(e.SHA256, "sha256:"))
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return &ChecksumError{Name: name, Want: "sha256:" + want, Got: "sha256:" + got}
	}
	return nil
}

// copyBase64 decodes s into dst without holding the decoded bytes in
// memory. It accepts a data: URI prefix, line breaks, and missing padding.
func copyBase64(dst io.Writer, s string) (int64, error) {
	if strings.HasPrefix(s, "data:") {
		i := strings.Index(s, ",")
		if i < 0 || !strings.HasSuffix(s[:i], ";base64") {
			return 0, errors.New("the data URI is not base64")
		}
		s = s[i+1:]
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(strings.TrimRight(s, "\r\n"), "=") && len(strings.TrimRight(s, "\r\n"))%4 != 0 {
		enc = base64.RawStdEncoding
	}
	n, err := io.Copy(dst, base64.NewDecoder(enc, strings.NewReader(s)))
	if err != nil {
		return n, fmt.Errorf("the base64 data is not valid: %w", err)
	}
	return n, nil
}

// download streams u into dst, bounded in time and size.
func (w *OutputWriter) download(ctx context.Context, dst io.Writer, u string) (int64, error) {
	if !isHTTPURL(u) {
		return 0, fmt.Errorf("cannot download %q: only http(s) URLs are fetched; for a gs:// path ask the worker for signed URLs (GCS_SIGNED_URL_TTL) or copy it with gcloud storage cp", redactURL(u))
	}
	timeout, limit, hc := w.Timeout, w.MaxBytes, w.HTTPClient
	if timeout <= 0 {
		timeout = DefaultDownloadTimeout
	}
	if limit <= 0 {
		limit = DefaultMaxDownload
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", redactURL(u), err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", redactErr(err, u))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
			hint = ": the URL may need signing or may have expired"
		}
		return 0, fmt.Errorf("download %s: HTTP %d%s", redactURL(u), resp.StatusCode, hint)
	}
	if resp.ContentLength > limit {
		return 0, fmt.Errorf("download %s: %d bytes, over the %d-byte limit", redactURL(u), resp.ContentLength, limit)
	}
	n, err := io.Copy(dst, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return n, fmt.Errorf("download %s: %w", redactURL(u), redactErr(err, u))
	}
	if n > limit {
		return n, fmt.Errorf("download %s: over the %d-byte limit", redactURL(u), limit)
	}
	return n, nil
}

// redactURL drops the query, which holds the signature of a signed URL.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?..."
	}
	return u
}

// redactErr keeps a signed URL's query out of net/http's error text while
// keeping the error chain (context.Canceled, timeouts) intact.
func redactErr(err error, u string) error {
	var ue *url.Error
	if strings.Contains(u, "?") && errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: ue.Err}
	}
	return err
}
