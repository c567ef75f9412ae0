package output

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"github.com/rs/zerolog"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/runpod-comfy/worker/pkg/progress"
)

// Defaults for GCSConfig's zero fields.
const (
	// DefaultGCSPrefix is the original tool's object prefix.
	DefaultGCSPrefix = "comfy/outputs"
	// DefaultGCSChunkSize bounds the memory an upload holds: the storage
	// Writer buffers one chunk, whatever the file's size.
	DefaultGCSChunkSize = 8 << 20
	// DefaultGCSAttempts is how many times a file's upload is tried.
	DefaultGCSAttempts = 4
	// DefaultGCSParallel is how many files upload at once.
	DefaultGCSParallel = 4
	// MaxSignedURLTTL is the longest lifetime GCS allows a V4 signed URL.
	MaxSignedURLTTL = 7 * 24 * time.Hour
	// PublicGCSBase is where objects are served over HTTPS.
	PublicGCSBase = "https://storage.googleapis.com"
)

// GCSConfig configures GCS delivery. Bucket and Prefix are the endpoint's
// defaults (GCS_BUCKET, GCS_PREFIX); a job may override both.
type GCSConfig struct {
	Bucket string
	// Prefix goes before every object name; "" means DefaultGCSPrefix and
	// "/" means no prefix at all.
	Prefix string
	// SignedURLTTL > 0 adds a V4 signed GET URL valid that long to every
	// output (GCS_SIGNED_URL_TTL); at most MaxSignedURLTTL.
	SignedURLTTL time.Duration
	// Public grants allUsers read on each object (GCS_PUBLIC).
	Public bool
	// Credentials authenticate the client and sign URLs; nil means
	// Application Default Credentials.
	Credentials *Credentials
	// Client, when set, is used instead of building one (tests, or a
	// client shared with other packages); it is not closed by Close.
	Client *storage.Client
	// ClientOptions are appended to the credentials' options when the
	// client is built (an endpoint for an emulator, an HTTP client).
	ClientOptions []option.ClientOption
	// MaxAttempts per file (0: DefaultGCSAttempts; 1: no retry).
	MaxAttempts int
	// RetryBackoff is the first pause between attempts, doubled each time
	// up to 30 s (0: 500 ms).
	RetryBackoff time.Duration
	// ChunkSize of the resumable upload (0: DefaultGCSChunkSize).
	ChunkSize int
	// Parallel uploads (0: DefaultGCSParallel).
	Parallel int
	// SigningHost is the host signed URLs point at (default
	// storage.googleapis.com).
	SigningHost string
	Logger      zerolog.Logger
	Progress    progress.Func
}

// GCS uploads output files to Google Cloud Storage.
type GCS struct {
	cfg        GCSConfig
	client     *storage.Client
	ownsClient bool
	log        zerolog.Logger
}

// ErrNoBucket is GCS delivery asked for with no bucket configured.
var ErrNoBucket = errors.New(`GCS output needs a bucket: set GCS_BUCKET on the endpoint or pass "gcs_bucket" in the job input`)

// NewGCS checks cfg and builds the storage client. It makes no request, so
// a wrong bucket or missing permission shows at the first upload.
func NewGCS(ctx context.Context, cfg GCSConfig) (*GCS, error) {
	if cfg.SignedURLTTL < 0 || cfg.SignedURLTTL > MaxSignedURLTTL {
		return nil, fmt.Errorf("GCS signed URL lifetime %s is out of range: GCS allows 1s to 7 days (604800 s)", cfg.SignedURLTTL)
	}
	if cfg.SignedURLTTL > 0 && cfg.Credentials != nil && cfg.Credentials.Type == "authorized_user" {
		return nil, fmt.Errorf("GCS_SIGNED_URL_TTL is set but %s cannot sign URLs: use a service-account key (GOOGLE_APPLICATION_CREDENTIALS or a key secret), or unset GCS_SIGNED_URL_TTL", cfg.Credentials)
	}
	if cfg.Bucket != "" {
		b, err := normalizeBucket(cfg.Bucket)
		if err != nil {
			return nil, err
		}
		cfg.Bucket = b
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultGCSAttempts
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 500 * time.Millisecond
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultGCSChunkSize
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultGCSParallel
	}
	if cfg.SigningHost == "" {
		cfg.SigningHost = "storage.googleapis.com"
	}
	g := &GCS{cfg: cfg, client: cfg.Client, log: cfg.Logger}
	if g.client == nil {
		opts := append(cfg.Credentials.ClientOptions(), cfg.ClientOptions...)
		c, err := storage.NewClient(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("create GCS client with %s: %w: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file or pass the key as a secret", cfg.Credentials, err)
		}
		g.client, g.ownsClient = c, true
	}
	if cfg.SignedURLTTL > 0 && !cfg.Credentials.CanSign() {
		g.log.Info().Msg("GCS signed URLs without a service-account key: signing goes through the IAM signBlob API and needs iam.serviceAccounts.signBlob")
	}
	return g, nil
}

// Close releases the client if NewGCS built it.
func (g *GCS) Close() error {
	if g.ownsClient {
		return g.client.Close()
	}
	return nil
}

// CheckBucket reports, before any work is done, whether an upload to
// bucket ("" = the configured one) could start: there is a bucket and GCS
// would accept its name.
func (g *GCS) CheckBucket(bucket string) error {
	if bucket == "" {
		bucket = g.cfg.Bucket
	}
	if bucket == "" {
		return ErrNoBucket
	}
	_, err := normalizeBucket(bucket)
	return err
}

// UploadRequest is one job's outputs. Bucket and Prefix override the
// configured defaults when set.
type UploadRequest struct {
	Bucket, Prefix string
	JobID          string
	Files          []Local
	// Warn receives problems that do not fail the upload (a public ACL the
	// bucket refused), for the job's result warnings. May be nil.
	Warn func(msg string)
}

// UploadError is a file that could not be uploaded.
type UploadError struct {
	File, Bucket, Object string
	Attempts             int
	Err                  error
}

func (e *UploadError) Error() string {
	return fmt.Sprintf("GCS upload of %s to gs://%s/%s failed after %d attempt(s): %v%s",
		e.File, e.Bucket, e.Object, e.Attempts, e.Err, gcsHint(e.Err))
}

func (e *UploadError) Unwrap() error { return e.Err }

// Upload stores every file as its own object and describes them. It is all
// or nothing: on any failure the objects this call created are deleted
// (best effort) and no File is returned.
func (g *GCS) Upload(ctx context.Context, req UploadRequest) ([]File, error) {
	bucket := req.Bucket
	if bucket == "" {
		bucket = g.cfg.Bucket
	}
	if bucket == "" {
		return nil, ErrNoBucket
	}
	bucket, err := normalizeBucket(bucket)
	if err != nil {
		return nil, err
	}
	prefix := req.Prefix
	if prefix == "" {
		prefix = g.cfg.Prefix
	}
	names := objectNames(prefix, req.JobID, req.Files)
	if g.cfg.SignedURLTTL > 0 && len(names) > 0 {
		// Signing needs no object; trying it first fails a job whose
		// credentials cannot sign before anything is uploaded.
		if _, err := g.sign(bucket, names[0]); err != nil {
			return nil, err
		}
	}

	out := make([]File, len(req.Files))
	done, err := uploadAll(ctx, len(req.Files), g.cfg.Parallel, func(ctx context.Context, i int) (err error) {
		out[i], err = g.uploadOne(ctx, bucket, names[i], req.Files[i], req.Warn)
		return err
	})
	if err != nil {
		g.rollback(ctx, bucket, names, done)
		return nil, err
	}
	return out, nil
}

// rollback deletes what a failed Upload created, so no job's partial set
// of outputs is left behind looking complete.
func (g *GCS) rollback(ctx context.Context, bucket string, names []string, done []bool) {
	for i, ok := range done {
		if ok {
			g.remove(ctx, bucket, names[i])
		}
	}
}

// retryOptions make the storage client retry a failed request of an upload
// (session start or chunk) in place, resuming rather than restarting. Our
// uploads overwrite a name unique to the job, so repeating one is harmless
// even without a precondition: hence RetryAlways. The client bounds upload
// retries only by time, so shouldRetry also counts: after MaxAttempts
// consecutive failures with no progress, it gives up and uploadOne decides.
func (g *GCS) retryOptions(shouldRetry func(error) bool) []storage.RetryOption {
	return []storage.RetryOption{
		storage.WithPolicy(storage.RetryAlways),
		storage.WithErrorFunc(shouldRetry),
		storage.WithBackoff(gax.Backoff{Initial: g.cfg.RetryBackoff, Max: 30 * time.Second, Multiplier: 2}),
	}
}

// gcsHint adds what to do for the failures an operator can fix.
func gcsHint(err error) string {
	if errors.Is(err, storage.ErrBucketNotExist) {
		return ": check GCS_BUCKET / gcs_bucket"
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return ""
	}
	switch ge.Code {
	case 401:
		return ": the credentials were rejected (check the key, or GOOGLE_APPLICATION_CREDENTIALS)"
	case 403:
		return ": the credentials lack permission to create objects in this bucket (grant roles/storage.objectCreator)"
	case 404:
		return ": the bucket does not exist or these credentials cannot see it (check GCS_BUCKET / gcs_bucket)"
	}
	return ""
}
