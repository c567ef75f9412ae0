package main

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/pkg/job"
)

// TestS3DelivererAtStart: keys missing or an endpoint that is not a URL
// stop the worker at start, naming the settings and never the secret.
func TestS3DelivererAtStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"no secret", map[string]string{"BUCKET_ENDPOINT_URL": "https://s3.example.com", "BUCKET_ACCESS_KEY_ID": "AK"}, "BUCKET_SECRET_ACCESS_KEY"},
		{"endpoint without scheme", map[string]string{"S3_ENDPOINT": "s3.example.com", "S3_BUCKET": "b-1", "S3_ACCESS_KEY_ID": "AK", "S3_SECRET_ACCESS_KEY": "very-secret-value"}, "S3_BUCKET, S3_ENDPOINT"},
		{"fine", map[string]string{"S3_BUCKET": "b-1", "S3_ACCESS_KEY_ID": "AK", "S3_SECRET_ACCESS_KEY": "very-secret-value"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &app{getenv: func(k string) string { return tc.env[k] }, log: zerolog.Nop()}
			var cfg job.Config
			_, err := a.stores(context.Background(), &cfg)
			if tc.wantErr == "" {
				if err != nil || cfg.S3 == nil {
					t.Fatalf("%v %v", cfg.S3, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "very-secret-value") {
				t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
	a := &app{getenv: func(string) string { return "" }, log: zerolog.Nop()}
	var cfg job.Config
	if _, err := a.stores(context.Background(), &cfg); cfg.S3 != nil || cfg.GCS != nil || err != nil {
		t.Errorf("no store setting: %v %v %v, want no deliverer", cfg.GCS, cfg.S3, err)
	}
	a.getenv = func(k string) string { return map[string]string{"RESPONSE_FORMAT": "xml"}[k] }
	if _, err := a.jobHandler(nil); err == nil || !strings.Contains(err.Error(), "RESPONSE_FORMAT") {
		t.Errorf("RESPONSE_FORMAT=xml: %v", err)
	}
}
