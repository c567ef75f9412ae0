package main

// S3 output and the job defaults that came with drop-in support for
// worker-comfyui clients. Kept apart from delivery.go and cmd_serve.go
// while worker/ is being refactored.

import (
	"context"
	"fmt"
	"strings"

	"github.com/runpod-comfy/worker/pkg/job"
	"github.com/runpod-comfy/worker/pkg/output"
)

// s3Config is the S3 part of the environment. Two conventions configure
// it: RunPod's (BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID,
// BUCKET_SECRET_ACCESS_KEY, read as RunPod's Python upload helper reads
// them) and explicit S3_* settings, which win where both are set.
type s3Config struct {
	output.S3Config
	// set names the settings that made S3 configured, for messages.
	set []string
}

// loadS3Config reads the S3 settings; ok is false when none is set, so a
// worker without S3 never looks for keys.
func loadS3Config(getenv func(string) string) (cfg s3Config, ok bool, err error) {
	for _, k := range []string{"S3_BUCKET", "S3_ENDPOINT", "S3_ENDPOINT_URL", "BUCKET_ENDPOINT_URL"} {
		if getenv(k) != "" {
			cfg.set = append(cfg.set, k)
		}
	}
	if len(cfg.set) == 0 {
		return cfg, false, nil
	}
	runpodEndpoint := getenv("BUCKET_ENDPOINT_URL")
	c := output.S3Config{
		Endpoint: firstNonEmpty(getenv("S3_ENDPOINT"), getenv("S3_ENDPOINT_URL"), runpodEndpoint),
		Region:   firstNonEmpty(getenv("S3_REGION"), getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")),
		Bucket:   firstNonEmpty(getenv("S3_BUCKET"), getenv("BUCKET_NAME")),
		Prefix:   firstNonEmpty(getenv("S3_PREFIX"), getenv("BUCKET_PREFIX")),
		AccessKeyID: firstNonEmpty(getenv("S3_ACCESS_KEY_ID"), getenv("BUCKET_ACCESS_KEY_ID"),
			getenv("AWS_ACCESS_KEY_ID")),
		SecretAccessKey: firstNonEmpty(getenv("S3_SECRET_ACCESS_KEY"), getenv("BUCKET_SECRET_ACCESS_KEY"),
			getenv("AWS_SECRET_ACCESS_KEY")),
		SessionToken: firstNonEmpty(getenv("S3_SESSION_TOKEN"), getenv("AWS_SESSION_TOKEN")),
		// RunPod's helper names the bucket after the month when it is given
		// none; with BUCKET_ENDPOINT_URL the same holds here.
		MonthlyBucket: runpodEndpoint != "",
		// boto3, which RunPod's helper uses, addresses a custom endpoint
		// path-style; AWS's own endpoint is virtual-hosted.
		PathStyle: firstNonEmpty(getenv("S3_ENDPOINT"), getenv("S3_ENDPOINT_URL"), runpodEndpoint) != "",
		// Presigned for 7 days, as RunPod's helper does.
		SignedURLTTL: output.MaxS3SignedURLTTL,
	}
	if v := getenv("S3_PATH_STYLE"); v != "" {
		c.PathStyle = truthy(v)
	}
	if v := getenv("S3_SIGNED_URL_TTL"); v != "" {
		ttl, err := output.ParseSignedURLTTL(v)
		if err != nil {
			return cfg, true, usageErr(fmt.Errorf("S3_SIGNED_URL_TTL: %s", strings.NewReplacer("GCS_SIGNED_URL_TTL", "S3_SIGNED_URL_TTL", "GCS", "S3").Replace(err.Error())))
		}
		c.SignedURLTTL = ttl
	}
	cfg.S3Config = c
	return cfg, true, nil
}

// s3Deliverer uploads a job's outputs to the S3 store.
type s3Deliverer struct {
	a  *app
	s3 *output.S3
}

// newS3Deliverer makes the client when the worker starts, so missing keys
// or a malformed endpoint stop it with what to do rather than failing
// every S3 job later. Nil (and no error) when S3 is not configured.
func (a *app) newS3Deliverer() (job.Deliverer, error) {
	cfg, ok, err := loadS3Config(a.getenv)
	if err != nil || !ok {
		return nil, err
	}
	cfg.Logger = a.log
	s, err := output.NewS3(cfg.S3Config)
	if err != nil {
		return nil, usageErr(fmt.Errorf("S3 is configured (%s) but unusable: %w", strings.Join(cfg.set, ", "), err))
	}
	return &s3Deliverer{a: a, s3: s}, nil
}

func (d *s3Deliverer) Check(in *job.Input) error { return d.s3.CheckBucket(in.S3Bucket) }

func (d *s3Deliverer) Deliver(ctx context.Context, jobID string, in *job.Input, files []output.Local) ([]output.File, error) {
	return d.s3.Upload(ctx, output.UploadRequest{Bucket: in.S3Bucket, Prefix: in.S3Prefix, JobID: jobID, Files: files})
}

func (d *gcsDeliverer) Check(in *job.Input) error { return d.gcs.CheckBucket(in.GCSBucket) }

// jobFormatDefaults reads RESPONSE_FORMAT, the result shape of jobs that
// ask for none (so worker-comfyui's clients need not), and
// COMFY_ORG_API_KEY, the key for Comfy.org API nodes of jobs that bring
// none.
func (a *app) jobFormatDefaults() (format, apiKey string, err error) {
	format = strings.TrimSpace(a.getenv("RESPONSE_FORMAT"))
	if !output.ValidFormat(format) {
		return "", "", usageErr(fmt.Errorf("RESPONSE_FORMAT=%q: use %q, %q or %q", format,
			output.FormatDefault, output.FormatOriginal, output.FormatWorkerComfyUI))
	}
	return format, a.getenv("COMFY_ORG_API_KEY"), nil
}
