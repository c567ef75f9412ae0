package output

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Output modes a job or OUTPUT_MODE can name.
const (
	ModeBase64 = "base64"
	ModeGCS    = "gcs"
	// ModeAuto returns base64 while the result stays small and GCS URLs
	// once it would not.
	ModeAuto = "auto"
)

// Auto delivers the files as base64 when their encoded total is at most
// threshold (0: DefaultBase64Limit), else uploads them with g. It returns
// the mode it used. With no GCS configured (g nil) a large result fails
// with a *TooLargeError that says to configure GCS.
func Auto(ctx context.Context, g *GCS, req UploadRequest, threshold int64) ([]File, string, error) {
	if threshold <= 0 {
		threshold = DefaultBase64Limit
	}
	var total int64
	for _, f := range req.Files {
		n, err := f.size()
		if err != nil {
			return nil, "", err
		}
		total += EncodedLen(n)
	}
	if total <= threshold || g == nil {
		files, err := Base64(ctx, req.Files, max(threshold, DefaultBase64Limit))
		return files, ModeBase64, err
	}
	files, err := g.Upload(ctx, req)
	return files, ModeGCS, err
}

// ParseSignedURLTTL reads GCS_SIGNED_URL_TTL: whole seconds as the original
// tool took them ("3600"), or a Go duration ("1h", "90m"). "" and "0" mean
// no signed URLs.
func ParseSignedURLTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > int64(MaxSignedURLTTL/time.Second) {
			n = int64(MaxSignedURLTTL/time.Second) + 1 // out of range below, without overflow
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("GCS_SIGNED_URL_TTL %q is not a number of seconds or a duration like 1h", s)
	}
	if d < 0 || d > MaxSignedURLTTL {
		return 0, fmt.Errorf("GCS_SIGNED_URL_TTL %q is out of range: GCS allows up to 7 days (604800 s)", s)
	}
	return d, nil
}
