package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/storage"

	"github.com/runpod-comfy/worker/internal/envconf"
	"github.com/runpod-comfy/worker/pkg/job"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/urlfetch"
)

// gcsConfig is the GCS part of the environment.
type gcsConfig struct {
	Bucket, Prefix string
	SignedURLTTL   time.Duration
	Public         bool
	Credentials    output.CredentialSource
}

func loadGCSConfig(getenv func(string) string) (gcsConfig, error) {
	ttl, err := output.ParseSignedURLTTL(getenv("GCS_SIGNED_URL_TTL"))
	if err != nil {
		return gcsConfig{}, usageErr(fmt.Errorf("GCS_SIGNED_URL_TTL: %w", err))
	}
	return gcsConfig{
		Bucket: getenv("GCS_BUCKET"), Prefix: getenv("GCS_PREFIX"), SignedURLTTL: ttl, Public: envconf.Truthy(getenv("GCS_PUBLIC")),
		Credentials: output.CredentialSource{
			File: getenv("GOOGLE_APPLICATION_CREDENTIALS"),
			// A key pasted into a RunPod secret: JSON or base64 of it.
			Value: firstNonEmpty(getenv("GCS_CREDENTIALS_JSON"), getenv("GOOGLE_CREDENTIALS_JSON")),
		},
	}, nil
}

// configured reports whether this worker was given any GCS setting, so a
// base64-only deployment never looks for Google credentials.
func (c gcsConfig) configured(getenv func(string) string) bool {
	return c.Bucket != "" || c.Credentials.File != "" || c.Credentials.Value != "" || getenv("STORAGE_EMULATOR_HOST") != ""
}

// what names the settings that made GCS configured, for messages.
func (c gcsConfig) what() string {
	var set []string
	if c.Bucket != "" {
		set = append(set, "GCS_BUCKET")
	}
	if c.Credentials.File != "" {
		set = append(set, "GOOGLE_APPLICATION_CREDENTIALS")
	}
	if c.Credentials.Value != "" {
		set = append(set, "a key secret")
	}
	if len(set) == 0 {
		set = append(set, "STORAGE_EMULATOR_HOST")
	}
	return strings.Join(set, ", ")
}

// gcsDeliverer uploads a job's outputs to GCS.
type gcsDeliverer struct {
	a     *app
	gcs   *output.GCS
	creds *output.Credentials
}

// newGCSDeliverer loads the credentials and makes the client when the
// worker starts (after its volume is mounted), so a key that cannot be used
// stops it with what to do rather than failing every GCS job later.
func (a *app) newGCSDeliverer(ctx context.Context, cfg gcsConfig) (*gcsDeliverer, error) {
	creds, err := output.LoadCredentials(cfg.Credentials)
	if err != nil {
		return nil, usageErr(fmt.Errorf("GCS is configured (%s) but unusable: %w", cfg.what(), err))
	}
	g, err := output.NewGCS(ctx, output.GCSConfig{
		Bucket: cfg.Bucket, Prefix: cfg.Prefix, SignedURLTTL: cfg.SignedURLTTL, Public: cfg.Public,
		Credentials: creds, Logger: a.log,
	})
	if err != nil {
		return nil, usageErr(fmt.Errorf("GCS is configured (%s) but unusable: %w", cfg.what(), err))
	}
	return &gcsDeliverer{a: a, gcs: g, creds: creds}, nil
}

func (d *gcsDeliverer) Deliver(ctx context.Context, jobID string, in *job.Input, files []output.Local) ([]output.File, error) {
	return d.gcs.Upload(ctx, output.UploadRequest{
		Bucket: in.GCSBucket, Prefix: in.GCSPrefix, JobID: jobID, Files: files,
		Warn: func(msg string) { d.a.log.Warn().Str("job_id", jobID).Msg(msg) },
	})
}

// urlFetcher builds the fetcher for URL inputs (images, workflow_url):
// loopback, private, link-local and metadata addresses are refused unless
// the operator allows them.
func (a *app) urlFetcher(creds *output.Credentials) (job.Fetcher, error) {
	env := &envconf.Reader{Getenv: a.getenv}
	cfg := urlfetch.Config{
		MaxBytes: env.Bytes("COMFY_URL_MAX_BYTES"), Timeout: env.Seconds("COMFY_URL_TIMEOUT", 0),
		AllowHTTP:     env.On("COMFY_URL_ALLOW_HTTP"),
		AllowLoopback: env.On("COMFY_URL_ALLOW_LOOPBACK"),
		AllowPrivate:  env.On("COMFY_URL_ALLOW_PRIVATE"),
		// Link-local and metadata services (169.254.169.254 and friends)
		// hand out the machine's credentials: each needs its own setting.
		AllowLinkLocal: env.On("COMFY_URL_ALLOW_LINK_LOCAL"),
		AllowMetadata:  env.On("COMFY_URL_ALLOW_METADATA"),
		AllowedHosts:   env.List("COMFY_URL_ALLOWED_HOSTS"),
		GCSBuckets:     env.List("COMFY_URL_GCS_BUCKETS"),
		Hints: map[urlfetch.Class]string{
			urlfetch.ClassLoopback:  "set COMFY_URL_ALLOW_LOOPBACK=1 on the worker to allow it",
			urlfetch.ClassPrivate:   "set COMFY_URL_ALLOW_PRIVATE=1 on the worker to allow it, or list the host in COMFY_URL_ALLOWED_HOSTS",
			urlfetch.ClassLinkLocal: "set COMFY_URL_ALLOW_LINK_LOCAL=1 on the worker to allow it, or list the host in COMFY_URL_ALLOWED_HOSTS",
			urlfetch.ClassMetadata:  "cloud metadata services hand out the machine's credentials; COMFY_URL_ALLOW_METADATA=1 on the worker allows them",
		},
		Logger: a.log,
	}
	if env.Err() != nil {
		return nil, usageErr(env.Err())
	}
	// gs:// inputs need a client: made from the GCS credentials when the
	// worker has them (creds is nil when no GCS setting is given).
	if creds != nil {
		client, err := storage.NewClient(context.Background(), creds.ClientOptions()...)
		if err != nil {
			return nil, fmt.Errorf("GCS client for gs:// inputs: %w", err)
		}
		cfg.GCS = client
	}
	return urlfetch.New(cfg).Open, nil
}
