package output

import (
	"strings"
	"testing"
	"time"
)

// s3Want is the part of an S3 configuration the environment decides.
type s3Want struct {
	Endpoint, Region, Bucket, Prefix      string
	AccessKeyID, SecretAccessKey, Session string
	MonthlyBucket, PathStyle              bool
	SignedURLTTL                          time.Duration
}

func wantOf(c S3Config) s3Want {
	return s3Want{c.Endpoint, c.Region, c.Bucket, c.Prefix, c.AccessKeyID, c.SecretAccessKey, c.SessionToken, c.MonthlyBucket, c.PathStyle, c.SignedURLTTL}
}

// TestS3FromEnv: RunPod's BUCKET_* convention is read as its upload
// helper reads it (endpoint as given, path style, the month's bucket,
// 7-day presigned URLs), explicit S3_* settings win, and nothing set means
// no S3 at all.
func TestS3FromEnv(t *testing.T) {
	runpod := map[string]string{"BUCKET_ENDPOINT_URL": "https://my-bucket.s3.eu-west-2.amazonaws.com",
		"BUCKET_ACCESS_KEY_ID": "AK", "BUCKET_SECRET_ACCESS_KEY": "SK"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	week := 7 * 24 * time.Hour
	tests := []struct {
		name    string
		env     map[string]string
		want    *s3Want // nil: not configured
		wantErr string
	}{
		{name: "nothing set", env: map[string]string{"AWS_ACCESS_KEY_ID": "AK"}},
		{name: "RunPod's convention", env: runpod, want: &s3Want{Endpoint: "https://my-bucket.s3.eu-west-2.amazonaws.com",
			AccessKeyID: "AK", SecretAccessKey: "SK", MonthlyBucket: true, PathStyle: true, SignedURLTTL: week}},
		{name: "RunPod's S3 API with a volume as bucket", env: with(runpod, "BUCKET_ENDPOINT_URL", "https://s3api-eu-ro-1.runpod.io", "S3_BUCKET", "vol123"),
			want: &s3Want{Endpoint: "https://s3api-eu-ro-1.runpod.io", Bucket: "vol123", AccessKeyID: "AK", SecretAccessKey: "SK",
				MonthlyBucket: true, PathStyle: true, SignedURLTTL: week}},
		{name: "explicit settings win", env: with(runpod, "S3_ENDPOINT", "https://acct.r2.cloudflarestorage.com", "S3_BUCKET", "outs",
			"S3_PREFIX", "runs", "S3_REGION", "auto", "S3_ACCESS_KEY_ID", "AK2", "S3_SECRET_ACCESS_KEY", "SK2", "S3_SIGNED_URL_TTL", "1h"),
			want: &s3Want{Endpoint: "https://acct.r2.cloudflarestorage.com", Region: "auto", Bucket: "outs", Prefix: "runs",
				AccessKeyID: "AK2", SecretAccessKey: "SK2", MonthlyBucket: true, PathStyle: true, SignedURLTTL: time.Hour}},
		{name: "AWS itself", env: map[string]string{"S3_BUCKET": "outs", "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK",
			"AWS_SESSION_TOKEN": "TOK", "BUCKET_PREFIX": "p", "S3_SIGNED_URL_TTL": "0"},
			want: &s3Want{Region: "eu-west-1", Bucket: "outs", Prefix: "p", AccessKeyID: "AK", SecretAccessKey: "SK", Session: "TOK"}},
		{name: "path style forced off", env: with(runpod, "S3_PATH_STYLE", "0"), want: &s3Want{Endpoint: "https://my-bucket.s3.eu-west-2.amazonaws.com",
			AccessKeyID: "AK", SecretAccessKey: "SK", MonthlyBucket: true, SignedURLTTL: week}},
		{name: "bad TTL", env: with(runpod, "S3_SIGNED_URL_TTL", "9d"), wantErr: "S3_SIGNED_URL_TTL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, ok, err := S3FromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "GCS") {
					t.Fatalf("error %v, want one about %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tc.want != nil) {
				t.Fatalf("configured = %v", ok)
			}
			if tc.want != nil && wantOf(cfg) != *tc.want {
				t.Errorf("config\n got %+v\nwant %+v", wantOf(cfg), *tc.want)
			}
		})
	}
}

// TestGCSFromEnv: any GCS setting configures it (and says which), none
// leaves it off, a bad TTL is an error naming the variable.
func TestGCSFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		set     string
		wantErr string
	}{
		{map[string]string{}, "", ""},
		{map[string]string{"GCS_BUCKET": "b", "GCS_PUBLIC": "1"}, "GCS_BUCKET", ""},
		{map[string]string{"GCS_CREDENTIALS_JSON": "{}"}, "a key secret", ""},
		{map[string]string{"STORAGE_EMULATOR_HOST": "127.0.0.1:1"}, "STORAGE_EMULATOR_HOST", ""},
		{map[string]string{"GCS_BUCKET": "b", "GCS_SIGNED_URL_TTL": "soon"}, "", "GCS_SIGNED_URL_TTL"},
	} {
		e, ok, err := GCSFromEnv(func(k string) string { return tc.env[k] })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err %v, want one naming %s", tc.env, err, tc.wantErr)
			}
			continue
		}
		if err != nil || ok != (tc.set != "") || strings.Join(e.Set, ",") != tc.set {
			t.Errorf("%v: %+v %v %v; want set %q", tc.env, e.Set, ok, err, tc.set)
		}
		if tc.env["GCS_PUBLIC"] == "1" && !e.Config.Public {
			t.Errorf("%v: GCS_PUBLIC not read", tc.env)
		}
	}
}
