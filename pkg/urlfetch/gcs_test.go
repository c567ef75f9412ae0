package urlfetch

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"
)

func TestParseGS(t *testing.T) {
	tests := []struct {
		in, bucket, object string
		err                bool
	}{
		{in: "gs://b/o.png", bucket: "b", object: "o.png"},
		{in: "gs://b/dir/a b%20c.png", bucket: "b", object: "dir/a b%20c.png"},
		{in: "gs://b", err: true},
		{in: "gs://b/", err: true},
		{in: "gs://b/dir/", err: true},
		{in: "gs:///o", err: true},
		{in: "https://b/o", err: true},
	}
	for _, tc := range tests {
		b, o, err := ParseGS(tc.in)
		if (err != nil) != tc.err || b != tc.bucket || o != tc.object {
			t.Errorf("ParseGS(%q) = %q, %q, %v", tc.in, b, o, err)
		}
	}
}

func TestFetchGS(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1",
		InitialObjects: []fakestorage.Object{
			{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "inputs", Name: "dir/cat.png"}, Content: payload(3000)},
			{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "private", Name: "secret.png"}, Content: payload(10)},
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	client, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL()+"/storage/v1/"), option.WithoutAuthentication(), storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	tests := []struct {
		name    string
		uri     string
		cfg     Config
		n       int
		wantErr string
		is      error
	}{
		{name: "object", uri: "gs://inputs/dir/cat.png", cfg: Config{GCS: client}, n: 3000},
		{name: "listed bucket", uri: "gs://inputs/dir/cat.png", cfg: Config{GCS: client, GCSBuckets: []string{"inputs"}}, n: 3000},
		{name: "unlisted bucket", uri: "gs://private/secret.png", cfg: Config{GCS: client, GCSBuckets: []string{"inputs"}}, wantErr: "not one this worker reads"},
		{name: "missing object", uri: "gs://inputs/nope.png", cfg: Config{GCS: client}, is: os.ErrNotExist},
		{name: "over the limit by its size", uri: "gs://inputs/dir/cat.png", cfg: Config{GCS: client, MaxBytes: 1000}, wantErr: "over the 1000-byte limit"},
		{name: "no client", uri: "gs://inputs/dir/cat.png", cfg: Config{}, wantErr: "need GCS credentials"},
		{name: "not an object", uri: "gs://inputs", cfg: Config{GCS: client}, wantErr: "does not name an object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New(tc.cfg)
			defer f.CloseIdleConnections()
			got, err := f.Get(context.Background(), tc.uri)
			if tc.wantErr == "" && tc.is == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, payload(tc.n)) {
					t.Fatalf("got %d bytes, want %d", len(got), tc.n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("error %v, want %q / %v", err, tc.wantErr, tc.is)
			}
		})
	}
}
