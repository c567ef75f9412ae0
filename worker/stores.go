package main

import (
	"context"
	"fmt"
	"strings"

	"cloud.google.com/go/storage"

	"github.com/runpod-comfy/worker/internal/envconf"
	"github.com/runpod-comfy/worker/pkg/job"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/urlfetch"
)

// stores sets up the output stores the environment configures (GCS, S3)
// when the worker starts, after its volume is mounted, so that a key that
// cannot be used stops it with what to do rather than failing every job
// later. creds are GCS's, for gs:// inputs; nil without GCS.
func (a *app) stores(ctx context.Context, cfg *job.Config) (creds *output.Credentials, err error) {
	unusable := func(store string, set []string, err error) error {
		return usageErr(fmt.Errorf("%s is configured (%s) but unusable: %w", store, strings.Join(set, ", "), err))
	}
	ge, ok, err := output.GCSFromEnv(a.getenv)
	if err != nil {
		return nil, usageErr(err)
	}
	if ok {
		if creds, err = output.LoadCredentials(ge.Credentials); err != nil {
			return nil, unusable("GCS", ge.Set, err)
		}
		gc := ge.Config
		gc.Credentials, gc.Logger = creds, a.log
		g, err := output.NewGCS(ctx, gc)
		if err != nil {
			return nil, unusable("GCS", ge.Set, err)
		}
		cfg.GCS = job.GCSDeliverer(g, a.log)
	}
	sc, set, ok, err := output.S3FromEnv(a.getenv)
	if err != nil {
		return nil, usageErr(err)
	}
	if ok {
		sc.Logger = a.log
		s, err := output.NewS3(sc)
		if err != nil {
			return nil, unusable("S3", set, err)
		}
		cfg.S3 = job.S3Deliverer(s, a.log)
	}
	return creds, nil
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
