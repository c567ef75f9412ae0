package urlfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"cloud.google.com/go/storage"
)

// errNoFile keeps os.ErrNotExist reachable for gs:// objects that do not exist.
var errNoFile = os.ErrNotExist

// ParseGS splits gs://bucket/object. The object name is taken verbatim
// (no percent-decoding), as gsutil and the console write it.
func ParseGS(uri string) (bucket, object string, err error) {
	rest, ok := strings.CutPrefix(uri, "gs://")
	if !ok {
		return "", "", fmt.Errorf("%q is not a gs:// URI", uri)
	}
	bucket, object, _ = strings.Cut(rest, "/")
	if bucket == "" || object == "" || strings.HasSuffix(object, "/") {
		return "", "", fmt.Errorf("%q does not name an object: use gs://bucket/path/to/file", uri)
	}
	return bucket, object, nil
}

// openGCS reads a gs:// object with the worker's credentials.
func (f *Fetcher) openGCS(ctx context.Context, uri string) (io.ReadCloser, error) {
	bucket, object, err := ParseGS(uri)
	if err != nil {
		return nil, err
	}
	if f.cfg.GCS == nil {
		return nil, fmt.Errorf("fetch %s: gs:// inputs need GCS credentials on the worker: set GOOGLE_APPLICATION_CREDENTIALS or a key secret, or use an https:// URL", uri)
	}
	if len(f.cfg.GCSBuckets) > 0 && !slices.Contains(f.cfg.GCSBuckets, bucket) {
		return nil, fmt.Errorf("fetch %s: bucket %q is not one this worker reads inputs from (allowed: %s)", uri, bucket, strings.Join(f.cfg.GCSBuckets, ", "))
	}
	tctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	r, err := f.cfg.GCS.Bucket(bucket).Object(object).NewReader(tctx)
	if err != nil {
		cancel()
		switch {
		case errors.Is(err, storage.ErrObjectNotExist):
			return nil, fmt.Errorf("fetch %s: no such object: %w", uri, errNoFile)
		case errors.Is(err, storage.ErrBucketNotExist):
			return nil, fmt.Errorf("fetch %s: no such bucket: %w", uri, errNoFile)
		}
		return nil, f.wrapErr(ctx, tctx, uri, err)
	}
	if size := r.Attrs.Size; size > f.cfg.MaxBytes {
		r.Close()
		cancel()
		return nil, &TooLargeError{URL: uri, Size: size, Limit: f.cfg.MaxBytes}
	}
	return &body{r: r, close: r.Close, cancel: cancel, parent: ctx, ctx: tctx, f: f, url: uri}, nil
}
