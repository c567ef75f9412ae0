package models

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
)

// gcsOrigin reads gs://bucket/object through the official client. A resume
// is pinned to the object generation first read, the GCS counterpart of
// If-Range.
type gcsOrigin struct {
	st  *Store
	src Source
}

func (o *gcsOrigin) describe() string { return o.src.Redacted() }

func (o *gcsOrigin) open(ctx context.Context, offset int64, validator string) (*stream, error) {
	client, err := o.st.gcsClient(ctx)
	if err != nil {
		return nil, permanent(err)
	}
	obj := client.Bucket(o.src.Bucket).Object(o.src.Path)
	gen, _ := strconv.ParseInt(validator, 10, 64)
	if offset > 0 && gen > 0 {
		obj = obj.Generation(gen)
	} else {
		offset = 0
	}
	r, err := obj.NewRangeReader(ctx, offset, -1)
	if err != nil {
		var ge *googleapi.Error
		switch {
		case errors.Is(err, storage.ErrObjectNotExist) && offset > 0:
			// The generation we started from was replaced: start over.
			return o.open(ctx, 0, "")
		case errors.As(err, &ge) && ge.Code == http.StatusRequestedRangeNotSatisfiable && offset > 0:
			return o.open(ctx, 0, "")
		case errors.Is(err, storage.ErrObjectNotExist), errors.Is(err, storage.ErrBucketNotExist):
			return nil, permanent(fmt.Errorf("%s: not found: check the bucket and object name", o.describe()))
		case errors.As(err, &ge) && (ge.Code == http.StatusUnauthorized || ge.Code == http.StatusForbidden):
			return nil, permanent(fmt.Errorf("%s: access denied (%d): give the service account in GOOGLE_APPLICATION_CREDENTIALS read access to the bucket", o.describe(), ge.Code))
		case errors.As(err, &ge) && ge.Code >= 400 && ge.Code < 500 && ge.Code != http.StatusTooManyRequests && ge.Code != http.StatusRequestTimeout:
			return nil, permanent(fmt.Errorf("%s: %w", o.describe(), err))
		}
		return nil, fmt.Errorf("%s: %w", o.describe(), err)
	}
	return &stream{body: r, start: offset, total: r.Attrs.Size, validator: strconv.FormatInt(r.Attrs.Generation, 10)}, nil
}
