package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/runpod-comfy/worker/internal/ctxwait"
	"github.com/runpod-comfy/worker/pkg/progress"
)

// uploadOne streams one file into one object, restarting from the file when
// the storage client's own retries give up on a transient error.
func (g *GCS) uploadOne(ctx context.Context, bucket, name string, l Local, warn func(string)) (File, error) {
	df, err := describe(l)
	if err != nil {
		return File{}, err
	}
	fh, err := l.open()
	if err != nil {
		return File{}, err
	}
	defer fh.Close()

	obj := g.client.Bucket(bucket).Object(name)
	log := g.log.With().Str("object", "gs://"+bucket+"/"+name).Logger()
	var (
		sum      string
		n        int64
		attempts int
	)
	backoff := g.cfg.RetryBackoff
	for attempts = 1; ; attempts++ {
		sum, n, err = g.put(ctx, obj, fh, df, name)
		if err == nil {
			break
		}
		if attempts >= g.cfg.MaxAttempts || ctx.Err() != nil || !storage.ShouldRetry(err) {
			break
		}
		log.Warn().Err(err).Int("attempt", attempts).Int64("retry_in_ms", backoff.Milliseconds()).Msg("GCS upload failed; restarting it")
		if werr := ctxwait.Sleep(ctx, backoff); werr != nil {
			err = werr
			break
		}
		backoff = min(backoff*2, 30*time.Second)
		if _, serr := fh.Seek(0, io.SeekStart); serr != nil {
			err = serr
			break
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		// The writer commits only on a successful Close, but a final chunk
		// whose reply was lost may have committed: make sure no object that
		// we report as failed is left behind.
		g.remove(ctx, bucket, name)
		return File{}, &UploadError{File: l.Filename, Bucket: bucket, Object: name, Attempts: attempts, Err: err}
	}
	df.Size, df.SHA256 = n, sum
	df.URL = objectURL(PublicGCSBase, bucket, name)
	df.GCSPath = "gs://" + bucket + "/" + name
	if g.cfg.Public {
		g.makePublic(ctx, obj, bucket, name, warn)
	}
	if g.cfg.SignedURLTTL > 0 {
		if df.SignedURL, err = g.sign(bucket, name); err != nil {
			g.remove(ctx, bucket, name)
			return File{}, err
		}
	}
	log.Debug().Int64("bytes", n).Int("attempts", attempts).Msg("uploaded output")
	return df, nil
}

// remove deletes an object this upload must not leave behind. It runs even
// when ctx is cancelled (that is often why it is needed), with its own
// deadline; a failure is logged, as there is nothing more to do.
func (g *GCS) remove(ctx context.Context, bucket, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := g.client.Bucket(bucket).Object(name).Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		g.log.Warn().Err(err).Str("object", "gs://"+bucket+"/"+name).Msg("could not delete an object of a failed upload")
	}
}

// put makes one upload attempt from the start of fh. The sha256 is computed
// from the bytes as they are sent, so the file is read once per attempt.
func (g *GCS) put(ctx context.Context, obj *storage.ObjectHandle, fh io.Reader, df File, name string) (string, int64, error) {
	// Cancelling the writer's context is how an upload is abandoned without
	// committing the object.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fails atomic.Int32 // consecutive failed requests; progress resets it
	limit := int32(g.cfg.MaxAttempts)
	w := obj.Retryer(g.retryOptions(func(err error) bool {
		return storage.ShouldRetry(err) && fails.Add(1) < limit
	})...).NewWriter(wctx)
	w.ContentType = df.ContentType
	w.ChunkSize = g.cfg.ChunkSize
	total := df.Size
	report := g.cfg.Progress
	w.ProgressFunc = func(done int64) {
		fails.Store(0)
		report.Report(progress.Event{Task: "upload", Item: name, Done: done, Total: total, Unit: "bytes"})
	}
	h := sha256.New()
	n, err := io.Copy(w, io.TeeReader(fh, h))
	if err != nil {
		cancel()
		_ = w.Close()
		return "", n, err
	}
	if err := w.Close(); err != nil {
		return "", n, err
	}
	if a := w.Attrs(); a != nil && a.Size != n {
		return "", n, fmt.Errorf("GCS stored %d bytes of %d", a.Size, n)
	}
	report.Report(progress.Event{Task: "upload", Item: name, Done: n, Total: n, Unit: "bytes", Finished: true})
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// makePublic grants allUsers read. A refusal is a warning, not a failure:
// the object is uploaded and reachable by gcs_path and signed_url.
func (g *GCS) makePublic(ctx context.Context, obj *storage.ObjectHandle, bucket, name string, warn func(string)) {
	err := obj.ACL().Set(ctx, storage.AllUsers, storage.RoleReader)
	if err == nil {
		return
	}
	msg := fmt.Sprintf("GCS_PUBLIC is set but gs://%s/%s could not be made public: %v", bucket, name, err)
	if uniformAccess(err) {
		msg = fmt.Sprintf("GCS_PUBLIC is set but bucket %s uses uniform bucket-level access, which refuses per-object ACLs: "+
			"grant allUsers the Storage Object Viewer role on the bucket to make outputs public, or use GCS_SIGNED_URL_TTL", bucket)
	}
	g.log.Warn().Str("object", "gs://"+bucket+"/"+name).Msg(msg)
	if warn != nil {
		warn(msg)
	}
}

func uniformAccess(err error) bool {
	var ge *googleapi.Error
	if !errors.As(err, &ge) || ge.Code != http.StatusBadRequest {
		return false
	}
	return strings.Contains(strings.ToLower(ge.Message+" "+ge.Body), "uniform bucket-level access")
}

// SignError is a signed URL that could not be made.
type SignError struct {
	Bucket, Object string
	Err            error
}

func (e *SignError) Error() string {
	return fmt.Sprintf("sign a URL for gs://%s/%s: %v: GCS_SIGNED_URL_TTL needs a service-account key "+
		"(GOOGLE_APPLICATION_CREDENTIALS or a key secret), or default credentials of a service account allowed to "+
		"call signBlob; or unset GCS_SIGNED_URL_TTL", e.Bucket, e.Object, e.Err)
}

func (e *SignError) Unwrap() error { return e.Err }

// sign makes a V4 GET URL: locally with the key when there is one, else
// through the client (IAM signBlob for a service account's ADC).
func (g *GCS) sign(bucket, name string) (string, error) {
	opts := &storage.SignedURLOptions{
		Method:   http.MethodGet,
		Expires:  signExpiry(time.Now(), g.cfg.SignedURLTTL),
		Scheme:   storage.SigningSchemeV4,
		Hostname: g.cfg.SigningHost,
	}
	var (
		u   string
		err error
	)
	if c := g.cfg.Credentials; c.CanSign() {
		opts.GoogleAccessID, opts.PrivateKey = c.ClientEmail, c.privateKey
		u, err = storage.SignedURL(bucket, name, opts)
	} else {
		u, err = g.client.Bucket(bucket).SignedURL(name, opts)
	}
	if err != nil {
		return "", &SignError{Bucket: bucket, Object: name, Err: err}
	}
	return u, nil
}

// signExpiry pads the expiry by half a second so the X-Goog-Expires the
// library derives (whole seconds, from its own slightly later clock) is the
// TTL asked for rather than one second less; never past GCS's maximum.
func signExpiry(now time.Time, ttl time.Duration) time.Time {
	return now.Add(ttl + min(500*time.Millisecond, MaxSignedURLTTL-ttl))
}

// objectURL is the object's HTTPS address, each path segment escaped.
func objectURL(base, bucket, name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimRight(base, "/") + "/" + bucket + "/" + strings.Join(segs, "/")
}
