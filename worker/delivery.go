package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"

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
		Bucket: getenv("GCS_BUCKET"), Prefix: getenv("GCS_PREFIX"), SignedURLTTL: ttl, Public: truthy(getenv("GCS_PUBLIC")),
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

// gcsDeliverer uploads a job's outputs to GCS. The client is made on the
// first upload: credentials are looked up only when a job asks for GCS.
type gcsDeliverer struct {
	a    *app
	cfg  gcsConfig
	once sync.Once
	gcs  *output.GCS
	err  error
}

func (d *gcsDeliverer) Deliver(ctx context.Context, jobID string, in *job.Input, files []output.Local) ([]output.File, error) {
	d.once.Do(func() {
		creds, err := output.LoadCredentials(d.cfg.Credentials)
		if err != nil {
			d.err = err
			return
		}
		d.gcs, d.err = output.NewGCS(context.WithoutCancel(ctx), output.GCSConfig{
			Bucket: d.cfg.Bucket, Prefix: d.cfg.Prefix, SignedURLTTL: d.cfg.SignedURLTTL, Public: d.cfg.Public,
			Credentials: creds, Logger: d.a.log,
		})
	})
	if d.err != nil {
		return nil, fmt.Errorf("GCS is not usable: %w", d.err)
	}
	return d.gcs.Upload(ctx, output.UploadRequest{
		Bucket: in.GCSBucket, Prefix: in.GCSPrefix, JobID: jobID, Files: files,
		Warn: func(msg string) { d.a.log.Warn().Str("job_id", jobID).Msg(msg) },
	})
}

// urlFetcher builds the fetcher for URL inputs (images, workflow_url):
// loopback, private, link-local and metadata addresses are refused unless
// the operator allows them.
func (a *app) urlFetcher(gc gcsConfig) (job.Fetcher, error) {
	maxBytes := int64(0)
	if v := a.getenv("COMFY_URL_MAX_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, usageErr(fmt.Errorf("COMFY_URL_MAX_BYTES=%q: want a number of bytes", v))
		}
		maxBytes = n
	}
	timeout, err := envSeconds(a.getenv, "COMFY_URL_TIMEOUT", 0)
	if err != nil {
		return nil, err
	}
	cfg := urlfetch.Config{
		MaxBytes: maxBytes, Timeout: timeout,
		AllowHTTP:     truthy(a.getenv("COMFY_URL_ALLOW_HTTP")),
		AllowLoopback: truthy(a.getenv("COMFY_URL_ALLOW_LOOPBACK")),
		AllowPrivate:  truthy(a.getenv("COMFY_URL_ALLOW_PRIVATE")),
		AllowedHosts:  strings.FieldsFunc(a.getenv("COMFY_URL_ALLOWED_HOSTS"), func(r rune) bool { return r == ',' || r == ' ' }),
		GCSBuckets:    strings.FieldsFunc(a.getenv("COMFY_URL_GCS_BUCKETS"), func(r rune) bool { return r == ',' || r == ' ' }),
		Hints: map[urlfetch.Class]string{
			urlfetch.ClassLoopback: "set COMFY_URL_ALLOW_LOOPBACK=1 on the worker to allow it",
			urlfetch.ClassPrivate:  "set COMFY_URL_ALLOW_PRIVATE=1 on the worker to allow it",
		},
		Logger: a.log,
	}
	// gs:// inputs need a client; make one only when credentials were
	// given explicitly, so a worker with just GCS_BUCKET (credentials found
	// later, for outputs) still starts.
	if gc.Credentials.File != "" || gc.Credentials.Value != "" || a.getenv("STORAGE_EMULATOR_HOST") != "" {
		creds, err := output.LoadCredentials(gc.Credentials)
		if err != nil {
			return nil, err
		}
		client, err := storage.NewClient(context.Background(), creds.ClientOptions()...)
		if err != nil {
			return nil, fmt.Errorf("GCS client for gs:// inputs: %w", err)
		}
		cfg.GCS = client
	}
	return urlfetch.New(cfg).Open, nil
}
