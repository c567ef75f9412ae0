package output

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGCSConfigErrors(t *testing.T) {
	f := newFakeGCS(t, "outputs")
	user, err := ParseCredentialsJSON([]byte(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`))
	if err != nil {
		t.Fatal(err)
	}
	p := writeOutput(t, t.TempDir(), "a.png", []byte("x"))
	one := []Local{{Filename: "a.png", Path: p}}
	tests := []struct {
		name    string
		cfg     GCSConfig
		req     UploadRequest
		wantErr string
		is      error
	}{
		{name: "no bucket anywhere", req: UploadRequest{JobID: "j", Files: one}, is: ErrNoBucket, wantErr: "GCS_BUCKET"},
		{name: "bucket with a path", req: UploadRequest{Bucket: "gs://b/x/y", JobID: "j", Files: one}, wantErr: "gcs_prefix"},
		{name: "bad bucket name", req: UploadRequest{Bucket: "My_Bucket!", JobID: "j", Files: one}, wantErr: "invalid GCS bucket name"},
		{name: "bad default bucket", cfg: GCSConfig{Bucket: "a"}, wantErr: "invalid GCS bucket name"},
		{name: "ttl over 7 days", cfg: GCSConfig{SignedURLTTL: 8 * 24 * time.Hour}, wantErr: "7 days"},
		{name: "ttl with credentials that cannot sign", cfg: GCSConfig{SignedURLTTL: time.Hour, Credentials: user}, wantErr: "cannot sign"},
		{name: "missing file", req: UploadRequest{Bucket: "outputs", JobID: "j", Files: []Local{{Filename: "gone.png", Path: p + ".gone"}}}, is: os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Client = f.client
			g, err := NewGCS(context.Background(), tc.cfg)
			if err == nil {
				_, err = g.Upload(context.Background(), tc.req)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("error %v, want one with %q (is %v)", err, tc.wantErr, tc.is)
			}
		})
	}
}

func TestAutoMode(t *testing.T) {
	f := newFakeGCS(t, "outputs")
	g := newTestGCS(t, f, nil)
	dir := t.TempDir()
	small := []Local{{NodeID: "1", Filename: "s.png", Path: writeOutput(t, dir, "s.png", randomBytes(t, 300))}}
	large := []Local{{NodeID: "1", Filename: "l.png", Path: writeOutput(t, dir, "l.png", randomBytes(t, 3000))}}
	tests := []struct {
		name     string
		g        *GCS
		files    []Local
		thresh   int64
		wantMode string
		tooLarge bool
	}{
		{name: "small goes inline", g: g, files: small, thresh: 1000, wantMode: ModeBase64},
		{name: "large goes to GCS", g: g, files: large, thresh: 1000, wantMode: ModeGCS},
		{name: "large without GCS still inline while it fits a result", g: nil, files: large, thresh: 1000, wantMode: ModeBase64},
		{name: "too large without GCS", g: nil, files: large, thresh: 1000, tooLarge: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tooLarge {
				// Over RunPod's limit too: make the file exceed it sparsely.
				big := filepath.Join(dir, "huge.bin")
				if err := os.WriteFile(big, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(big, DefaultBase64Limit); err != nil {
					t.Fatal(err)
				}
				tc.files = []Local{{Filename: "huge.bin", Path: big}}
			}
			got, mode, err := Auto(context.Background(), tc.g, UploadRequest{JobID: "auto", Files: tc.files}, tc.thresh)
			if tc.tooLarge {
				var tl *TooLargeError
				if !errors.As(err, &tl) {
					t.Fatalf("error %v, want *TooLargeError", err)
				}
				return
			}
			if err != nil || mode != tc.wantMode || len(got) != 1 {
				t.Fatalf("Auto = %d files, %q, %v; want mode %q", len(got), mode, err, tc.wantMode)
			}
			if (mode == ModeGCS) != (got[0].GCSPath != "") || (mode == ModeBase64) != (got[0].Base64 != nil) {
				t.Errorf("file %+v does not match mode %s", got[0], mode)
			}
		})
	}
}

func TestParseSignedURLTTL(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"3600", time.Hour, false}, {" 90m ", 90 * time.Minute, false},
		{"604800", MaxSignedURLTTL, false}, {"604801", 0, true}, {"99999999999999999", 0, true},
		{"-5", 0, true}, {"soon", 0, true}, {"8d", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseSignedURLTTL(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSignedURLTTL(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
