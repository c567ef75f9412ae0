package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/runpod-comfy/worker/pkg/progress"
)

// S3UploadError is a file that could not be uploaded.
type S3UploadError struct {
	File, Bucket, Object string
	Err                  error
}

func (e *S3UploadError) Error() string {
	return fmt.Sprintf("S3 upload of %s to s3://%s/%s failed: %s%s", e.File, e.Bucket, e.Object, s3Reason(e.Err), s3Hint(e.Err))
}

func (e *S3UploadError) Unwrap() error { return e.Err }

// uploadOne streams one file into one object with a single PUT. The file
// is read once per attempt: the payload is sent unsigned (its integrity is
// TLS's, as for every large S3 upload) and its sha256 is computed from the
// bytes as they go. The SDK retries a failed attempt from the start of the
// file, up to MaxAttempts.
func (s *S3) uploadOne(ctx context.Context, bucket, name string, l Local) (File, error) {
	df, err := describe(l)
	if err != nil {
		return File{}, err
	}
	fh, err := l.open()
	if err != nil {
		return File{}, err
	}
	defer fh.Close()
	body := &hashingReader{r: fh, h: sha256.New(), total: df.Size, item: name, report: s.cfg.Progress}
	fail := func(err error) (File, error) {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		// A PUT whose answer was lost may have stored the object: never
		// leave one behind that is reported as failed.
		s.remove(ctx, bucket, name)
		return File{}, &S3UploadError{File: l.Filename, Bucket: bucket, Object: name, Err: err}
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(name), Body: body,
		ContentLength: aws.Int64(df.Size), ContentType: aws.String(df.ContentType),
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	if err != nil {
		return fail(err)
	}
	sum, err := body.sum()
	if err != nil {
		return fail(err)
	}
	// The store must hold what was sent: a proxy or a store that cut the
	// body short would otherwise pass unnoticed.
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(name)})
	if err != nil {
		return fail(fmt.Errorf("check the stored object: %w", err))
	}
	if head.ContentLength == nil || *head.ContentLength != df.Size {
		return fail(fmt.Errorf("the store kept %d bytes of %d", aws.ToInt64(head.ContentLength), df.Size))
	}
	body.finished()
	df.SHA256 = sum
	df.URL = s.objectURL(bucket, name)
	df.S3Path = "s3://" + bucket + "/" + name
	if s.cfg.SignedURLTTL > 0 {
		p, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(name)},
			s3.WithPresignExpires(s.cfg.SignedURLTTL))
		if err != nil {
			return fail(fmt.Errorf("presign a GET URL: %w", err))
		}
		df.SignedURL = p.URL
	}
	s.log.Debug().Str("object", df.S3Path).Int64("bytes", df.Size).Msg("uploaded output")
	return df, nil
}

// remove deletes an object this upload must not leave behind. It runs even
// when ctx is cancelled (that is often why it is needed), with its own
// deadline; a failure is logged, as there is nothing more to do.
func (s *S3) remove(ctx context.Context, bucket, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(name)}); err != nil {
		var nf interface{ ErrorCode() string }
		if errors.As(err, &nf) && nf.ErrorCode() == "NoSuchKey" {
			return
		}
		s.log.Warn().Str("object", "s3://"+bucket+"/"+name).Str("reason", s3Reason(err)).Msg("could not delete an object of a failed upload")
	}
}

// objectURL is the object's plain HTTPS address (readable when the bucket
// is public), in the addressing style the client uses.
func (s *S3) objectURL(bucket, name string) string {
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	key := strings.Join(segs, "/")
	if s.cfg.Endpoint == "" {
		if s.cfg.PathStyle {
			return fmt.Sprintf("https://s3.%s.amazonaws.com/%s/%s", s.cfg.Region, bucket, key)
		}
		return fmt.Sprintf("https://%s.s3.%s.amazonaws.com/%s", bucket, s.cfg.Region, key)
	}
	u, _ := url.Parse(s.cfg.Endpoint) // checked by NewS3
	if s.cfg.PathStyle {
		return s.cfg.Endpoint + "/" + bucket + "/" + key
	}
	return u.Scheme + "://" + bucket + "." + u.Host + strings.TrimRight(u.Path, "/") + "/" + key
}

// hashingReader is the upload body: it hashes the bytes as they are read
// and reports progress. When the SDK rewinds it for a retry, the hash
// starts over.
type hashingReader struct {
	r      io.ReadSeeker
	h      hash.Hash
	pos    int64 // read position
	hashed int64 // bytes hashed, from the start
	total  int64
	item   string
	report progress.Func
	last   time.Time
}

func (b *hashingReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.pos == b.hashed {
		b.h.Write(p[:n])
		b.hashed += int64(n)
	}
	b.pos += int64(n)
	if now := time.Now(); n > 0 && now.Sub(b.last) >= 200*time.Millisecond {
		b.last = now
		b.report.Report(progress.Event{Task: "upload", Item: b.item, Done: b.pos, Total: b.total, Unit: "bytes"})
	}
	return n, err
}

func (b *hashingReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := b.r.Seek(offset, whence)
	if err != nil {
		return pos, err
	}
	if pos == 0 {
		b.h.Reset()
		b.hashed = 0
	}
	b.pos = pos
	return pos, nil
}

// sum is the hex sha256 of the whole file, once it has all been read in
// order.
func (b *hashingReader) sum() (string, error) {
	if b.hashed != b.total {
		return "", fmt.Errorf("read %d bytes of %d while sending", b.hashed, b.total)
	}
	return hex.EncodeToString(b.h.Sum(nil)), nil
}

func (b *hashingReader) finished() {
	b.report.Report(progress.Event{Task: "upload", Item: b.item, Done: b.total, Total: b.total, Unit: "bytes", Finished: true})
}

// s3Reason is the store's own words for a failure (its error code and
// message, and the HTTP status), without the SDK's operation wrapping.
func s3Reason(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		msg := api.ErrorCode()
		if m := api.ErrorMessage(); m != "" && m != msg {
			msg += ": " + m
		}
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			msg += fmt.Sprintf(" (HTTP %d)", re.HTTPStatusCode())
		}
		return msg
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("HTTP %d from the store", re.HTTPStatusCode())
	}
	return err.Error()
}

// s3Hint adds what to do for the failures an operator can fix.
func s3Hint(err error) string {
	var api smithy.APIError
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	var re *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case code == "NoSuchBucket" || status == 404:
		return ": the bucket does not exist or these credentials cannot see it (check S3_BUCKET / s3_bucket; with BUCKET_ENDPOINT_URL alone the bucket is the month, MM-YY, as RunPod's helper names it)"
	case code == "InvalidAccessKeyId":
		return ": the access key is unknown to the store (check S3_ACCESS_KEY_ID / BUCKET_ACCESS_KEY_ID)"
	case code == "SignatureDoesNotMatch":
		return ": the secret key does not match the access key (check S3_SECRET_ACCESS_KEY / BUCKET_SECRET_ACCESS_KEY)"
	case code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException" || code == "PermanentRedirect":
		return ": the bucket is in another region (set S3_REGION)"
	case code == "AccessDenied" || status == 403:
		return ": the credentials may not write to this bucket (grant s3:PutObject, s3:GetObject and s3:DeleteObject on it)"
	}
	return ""
}
