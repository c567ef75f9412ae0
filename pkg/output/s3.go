package output

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/pkg/progress"
)

// ModeS3 delivers outputs as objects in an S3-compatible store.
const ModeS3 = "s3"

// Defaults for S3Config's zero fields.
const (
	// DefaultS3Attempts is how many times one request of an upload is
	// tried.
	DefaultS3Attempts = 4
	// DefaultS3Parallel is how many files upload at once.
	DefaultS3Parallel = 4
	// MaxS3SignedURLTTL is the longest lifetime SigV4 allows a presigned
	// URL, and the one RunPod's upload helper gives its URLs.
	MaxS3SignedURLTTL = 7 * 24 * time.Hour
	// DefaultS3Region signs requests when neither the configuration nor
	// the endpoint names a region; stores that ignore regions accept it.
	DefaultS3Region = "us-east-1"
)

// S3Config configures delivery to an S3-compatible store (AWS S3,
// Cloudflare R2, MinIO, Backblaze B2, RunPod's S3 API). Bucket and Prefix
// are the endpoint's defaults; a job may override both.
type S3Config struct {
	// Endpoint is the store's base URL ("https://host[:port][/path]"); ""
	// means AWS S3 itself.
	Endpoint string
	// Region signs the requests; "" derives it from Endpoint
	// (S3RegionFromEndpoint), else DefaultS3Region.
	Region string
	// Bucket is the default bucket. With MonthlyBucket and no Bucket, the
	// bucket is the upload's month as MM-YY, as RunPod's upload helper
	// names it.
	Bucket        string
	MonthlyBucket bool
	// Prefix goes before every object name; "" means DefaultGCSPrefix and
	// "/" means none, as for GCS.
	Prefix string
	// Credentials: a static key pair (and session token for temporary
	// ones). They are never logged nor put in errors.
	AccessKeyID, SecretAccessKey, SessionToken string
	// PathStyle addresses buckets as <endpoint>/<bucket>/<key> rather than
	// <bucket>.<host>/<key>: what MinIO and most S3-compatible stores
	// need, and what RunPod's helper (boto3) does with a custom endpoint.
	PathStyle bool
	// SignedURLTTL > 0 gives every output a presigned GET URL valid that
	// long; at most MaxS3SignedURLTTL.
	SignedURLTTL time.Duration
	// MaxAttempts per request (0: DefaultS3Attempts; 1: no retry).
	MaxAttempts int
	// RetryBackoff is the first pause between attempts, doubled each time
	// up to 20 s (0: 500 ms).
	RetryBackoff time.Duration
	// Parallel uploads (0: DefaultS3Parallel).
	Parallel int
	// HTTPClient carries the requests (nil: the SDK's default client).
	HTTPClient *http.Client
	// Now dates the monthly bucket (nil: time.Now).
	Now      func() time.Time
	Logger   zerolog.Logger
	Progress progress.Func
}

// S3 uploads output files to an S3-compatible store.
type S3 struct {
	cfg     S3Config
	client  *s3.Client
	presign *s3.PresignClient
	log     zerolog.Logger
}

// ErrNoS3Bucket is S3 delivery asked for with no bucket configured.
var ErrNoS3Bucket = errors.New(`S3 output needs a bucket: set S3_BUCKET (or BUCKET_ENDPOINT_URL) on the endpoint, or pass "s3_bucket" in the job input`)

// NewS3 checks cfg and builds the client. It makes no request, so a wrong
// bucket or key shows at the first upload.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.SignedURLTTL < 0 || cfg.SignedURLTTL > MaxS3SignedURLTTL {
		return nil, fmt.Errorf("S3 presigned URL lifetime %s is out of range: S3 allows 1s to 7 days (604800 s)", cfg.SignedURLTTL)
	}
	if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return nil, errors.New("S3 needs an access key: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (or BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY)")
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("S3 endpoint %q is not a URL like https://s3.example.com: give the scheme and host (no key in the URL)", redactURL(cfg.Endpoint))
		}
		cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
		// A bucket cannot be a subdomain of an IP address: the SDK falls
		// back to path style there, and the URLs we build must agree.
		if net.ParseIP(u.Hostname()) != nil {
			cfg.PathStyle = true
		}
	}
	if cfg.Bucket != "" {
		if err := checkS3Bucket(cfg.Bucket); err != nil {
			return nil, err
		}
	}
	if cfg.Region == "" {
		cfg.Region = S3RegionFromEndpoint(cfg.Endpoint)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultS3Attempts
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 500 * time.Millisecond
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultS3Parallel
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	base := cfg.RetryBackoff
	opts := s3.Options{
		Region:       cfg.Region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)),
		UsePathStyle: cfg.PathStyle,
		// Checksums only where S3 requires them: the SDK's default trailing
		// checksums (aws-chunked bodies) are refused by R2, GCS's S3 API
		// and older MinIO; the sha256 we report is computed as the bytes
		// are sent instead.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = cfg.MaxAttempts
			// Every failed job is retried in full, not throttled by a
			// client-wide quota meant for long-lived API clients.
			o.RateLimiter = ratelimit.None
			o.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
				return min(base<<max(attempt-1, 0), 20*time.Second), nil
			})
		}),
	}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	client := s3.New(opts)
	return &S3{cfg: cfg, client: client, presign: s3.NewPresignClient(client), log: cfg.Logger}, nil
}

// bucketFor is the bucket of one upload: the job's, the configured one,
// or the month's.
func (s *S3) bucketFor(bucket string) (string, error) {
	if bucket == "" {
		bucket = s.cfg.Bucket
	}
	if bucket == "" && s.cfg.MonthlyBucket {
		bucket = s.cfg.Now().UTC().Format("01-06")
	}
	if bucket == "" {
		return "", ErrNoS3Bucket
	}
	return bucket, checkS3Bucket(bucket)
}

// CheckBucket reports, before any work is done, whether an upload to
// bucket ("" = the configured one) could start.
func (s *S3) CheckBucket(bucket string) error {
	_, err := s.bucketFor(bucket)
	return err
}

// Upload stores every file as its own object and describes them. It is all
// or nothing: on any failure the objects this call created are deleted
// (best effort) and no File is returned.
func (s *S3) Upload(ctx context.Context, req UploadRequest) ([]File, error) {
	bucket, err := s.bucketFor(req.Bucket)
	if err != nil {
		return nil, err
	}
	prefix := req.Prefix
	if prefix == "" {
		prefix = s.cfg.Prefix
	}
	names := objectNames(prefix, req.JobID, req.Files)
	out := make([]File, len(req.Files))
	done, err := uploadAll(ctx, len(req.Files), s.cfg.Parallel, func(ctx context.Context, i int) (err error) {
		out[i], err = s.uploadOne(ctx, bucket, names[i], req.Files[i])
		return err
	})
	if err != nil {
		for i, ok := range done {
			if ok {
				s.remove(ctx, bucket, names[i])
			}
		}
		return nil, err
	}
	return out, nil
}

// checkS3Bucket applies the naming rules every S3-compatible store shares,
// so a typo fails before any upload.
func checkS3Bucket(b string) error {
	if strings.Contains(b, "/") {
		return fmt.Errorf("S3 bucket %q contains a path: give the bucket name alone and put the path in s3_prefix / S3_PREFIX", b)
	}
	if len(b) < 3 || len(b) > 63 || !bucketRe.MatchString(b) || strings.Contains(b, "..") || strings.Contains(b, "_") {
		return fmt.Errorf("invalid S3 bucket name %q: use 3-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit", b)
	}
	return nil
}

// S3RegionFromEndpoint derives the signing region from a store's URL as
// RunPod's upload helper does (the label after ".s3." of an AWS-style
// host; the one before ".digitaloceanspaces.com"), and also reads
// "s3.<region>." hosts (AWS, Backblaze B2) and RunPod's S3 API
// (s3api-<datacenter>.runpod.io, whose region is the datacenter id).
// "" when the URL names none.
func S3RegionFromEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	labels := strings.Split(host, ".")
	if dc, ok := strings.CutPrefix(labels[0], "s3api-"); ok && strings.HasSuffix(host, ".runpod.io") && dc != "" {
		return strings.ToUpper(dc)
	}
	for i, l := range labels {
		switch {
		case (l == "s3" || strings.HasPrefix(l, "s3-")) && i+2 < len(labels):
			region := labels[i+1]
			if l != "s3" {
				region = strings.TrimPrefix(l, "s3-")
			}
			if region != "amazonaws" && region != "dualstack" {
				return region
			}
		case l == "digitaloceanspaces" && i > 0:
			return labels[i-1]
		}
	}
	return ""
}

// redactURL drops user info and query from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
