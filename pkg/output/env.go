package output

import (
	"fmt"
	"strings"

	"github.com/runpod-comfy/worker/internal/envconf"
)

// The stores' settings come from the environment by the names users of
// RunPod's tools already know. These readers take a lookup function (the
// process environment is read once, by the caller) and return a store's
// configuration plus the names of the settings that made it configured,
// for messages. ok is false when none is set: a base64-only worker never
// looks for keys.

// GCSEnv is the GCS part of the environment.
type GCSEnv struct {
	Config      GCSConfig
	Credentials CredentialSource
	// Set names the settings given ("GCS_BUCKET", "a key secret", ...).
	Set []string
}

// GCSFromEnv reads GCS_BUCKET, GCS_PREFIX, GCS_SIGNED_URL_TTL, GCS_PUBLIC,
// GOOGLE_APPLICATION_CREDENTIALS and a key pasted into GCS_CREDENTIALS_JSON
// (or GOOGLE_CREDENTIALS_JSON); STORAGE_EMULATOR_HOST alone configures it
// too, for emulators.
func GCSFromEnv(getenv func(string) string) (e GCSEnv, ok bool, err error) {
	ttl, err := ParseSignedURLTTL(getenv("GCS_SIGNED_URL_TTL"))
	if err != nil {
		return e, false, fmt.Errorf("GCS_SIGNED_URL_TTL: %w", err)
	}
	e.Config = GCSConfig{Bucket: getenv("GCS_BUCKET"), Prefix: getenv("GCS_PREFIX"), SignedURLTTL: ttl, Public: envconf.Truthy(getenv("GCS_PUBLIC"))}
	// A key pasted into a RunPod secret: JSON or base64 of it.
	e.Credentials = CredentialSource{File: getenv("GOOGLE_APPLICATION_CREDENTIALS"), Value: first(getenv("GCS_CREDENTIALS_JSON"), getenv("GOOGLE_CREDENTIALS_JSON"))}
	for _, s := range []struct{ name, v string }{
		{"GCS_BUCKET", e.Config.Bucket}, {"GOOGLE_APPLICATION_CREDENTIALS", e.Credentials.File},
		{"a key secret", e.Credentials.Value}, {"STORAGE_EMULATOR_HOST", getenv("STORAGE_EMULATOR_HOST")},
	} {
		if s.v != "" {
			e.Set = append(e.Set, s.name)
		}
	}
	return e, len(e.Set) > 0, nil
}

// S3FromEnv reads the S3 settings by two conventions: RunPod's
// (BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY, as
// RunPod's Python upload helper reads them) and explicit S3_* settings,
// which win where both are set; AWS_* keys and region are the last resort.
func S3FromEnv(getenv func(string) string) (c S3Config, set []string, ok bool, err error) {
	for _, k := range []string{"S3_BUCKET", "S3_ENDPOINT", "S3_ENDPOINT_URL", "BUCKET_ENDPOINT_URL"} {
		if getenv(k) != "" {
			set = append(set, k)
		}
	}
	if len(set) == 0 {
		return c, nil, false, nil
	}
	runpodEndpoint := getenv("BUCKET_ENDPOINT_URL")
	endpoint := first(getenv("S3_ENDPOINT"), getenv("S3_ENDPOINT_URL"), runpodEndpoint)
	c = S3Config{
		Endpoint:        endpoint,
		Region:          first(getenv("S3_REGION"), getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")),
		Bucket:          first(getenv("S3_BUCKET"), getenv("BUCKET_NAME")),
		Prefix:          first(getenv("S3_PREFIX"), getenv("BUCKET_PREFIX")),
		AccessKeyID:     first(getenv("S3_ACCESS_KEY_ID"), getenv("BUCKET_ACCESS_KEY_ID"), getenv("AWS_ACCESS_KEY_ID")),
		SecretAccessKey: first(getenv("S3_SECRET_ACCESS_KEY"), getenv("BUCKET_SECRET_ACCESS_KEY"), getenv("AWS_SECRET_ACCESS_KEY")),
		SessionToken:    first(getenv("S3_SESSION_TOKEN"), getenv("AWS_SESSION_TOKEN")),
		// RunPod's helper names the bucket after the month when it is given
		// none; with BUCKET_ENDPOINT_URL the same holds here.
		MonthlyBucket: runpodEndpoint != "",
		// boto3, which RunPod's helper uses, addresses a custom endpoint
		// path-style; AWS's own endpoint is virtual-hosted.
		PathStyle: endpoint != "",
		// Presigned for 7 days, as RunPod's helper does.
		SignedURLTTL: MaxS3SignedURLTTL,
	}
	if v := getenv("S3_PATH_STYLE"); v != "" {
		c.PathStyle = envconf.Truthy(v)
	}
	if v := getenv("S3_SIGNED_URL_TTL"); v != "" {
		ttl, err := ParseSignedURLTTL(v)
		if err != nil {
			return c, set, true, fmt.Errorf("S3_SIGNED_URL_TTL: %s", strings.NewReplacer("GCS_SIGNED_URL_TTL", "S3_SIGNED_URL_TTL", "GCS", "S3").Replace(err.Error()))
		}
		c.SignedURLTTL = ttl
	}
	return c, set, true, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
