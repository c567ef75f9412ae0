package models

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/runpod-comfy/worker/pkg/models/modeltest"
)

func newFakeGCS(t *testing.T, objects ...fakestorage.Object) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		InitialObjects: objects, Scheme: "http", Host: "127.0.0.1", Writer: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

func TestFetchGCS(t *testing.T) {
	data, digest := testData(2<<20+3, 6)
	gcs := newFakeGCS(t, fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "model-bucket", Name: "dir/m.safetensors"}, Content: data})
	// The store builds its own client from options, as the worker does
	// with an emulator or a custom endpoint.
	env := newTestStore(t, func(c *Config) {
		c.GCSOptions = []option.ClientOption{option.WithEndpoint(gcs.URL() + "/storage/v1/"), option.WithoutAuthentication(),
			// The fake serves media through the JSON API only.
			storage.WithJSONReads()}
	})
	ctx := testCtx(t)

	b, err := env.st.Fetch(ctx, Request{Source: "gs://model-bucket/dir/m.safetensors", SHA256: digest})
	if err != nil {
		t.Fatal(err)
	}
	if b.SHA256 != digest || !bytes.Equal(mustReadFile(t, b.Path), data) {
		t.Fatalf("blob %+v does not hold the object", b)
	}

	// A partial download left by a killed process resumes with a range
	// read pinned to the object generation.
	env2 := newTestStore(t, func(c *Config) { c.GCSClient = gcs.Client() })
	src, _ := ParseSource("gs://model-bucket/dir/m.safetensors")
	part := filepath.Join(env2.st.Dir(), "partial", "d-"+digest+".part")
	if err := env2.st.ensureDirs(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(part, data[:1<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	obj, err := gcs.GetObject("model-bucket", "dir/m.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	writeMeta(strings.TrimSuffix(part, ".part")+".json", partialMeta{SourceKey: hashKey(src.Canonical()),
		Validator: strconv.FormatInt(obj.Generation, 10), Total: int64(len(data))})
	// Its writer is long gone: the lease expired.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(part, old, old)
	b, err = env2.st.Fetch(ctx, Request{Source: src.Canonical(), SHA256: digest})
	if err != nil {
		t.Fatal(err)
	}
	if b.SHA256 != digest {
		t.Fatalf("resumed digest %s", b.SHA256)
	}
	if logs := env2.logs.String(); !strings.Contains(logs, "resuming download") || strings.Contains(logs, "restarting from 0") {
		t.Errorf("the partial file was not resumed:\n%s", logs)
	}

	_, err = env2.st.Fetch(ctx, Request{Source: "gs://model-bucket/missing.bin"})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing object: err = %v", err)
	}
}

func TestFetchLocalFile(t *testing.T) {
	dir := t.TempDir()
	data, digest := testData(1<<20, 7)
	if err := os.WriteFile(filepath.Join(dir, "m.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	env := newTestStore(t, func(c *Config) { c.LocalBase = dir; c.Offline = true })
	ctx := testCtx(t)
	for _, src := range []string{"m.bin", "./m.bin", filepath.Join(dir, "m.bin"), "file://" + filepath.Join(dir, "m.bin")} {
		b, err := env.st.Fetch(ctx, Request{Source: src})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if b.SHA256 != digest {
			t.Fatalf("%s: digest %s", src, b.SHA256)
		}
	}
	// A local file edited in place is copied again.
	newData, newDigest := testData(1<<20, 8)
	later := time.Now().Add(time.Minute)
	os.WriteFile(filepath.Join(dir, "m.bin"), newData, 0o644)
	os.Chtimes(filepath.Join(dir, "m.bin"), later, later)
	b, err := env.st.Fetch(ctx, Request{Source: "m.bin"})
	if err != nil || b.SHA256 != newDigest || !b.Downloaded {
		t.Fatalf("after an edit: %+v, %v", b, err)
	}
	if _, err := env.st.Fetch(ctx, Request{Source: "missing.bin"}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// Plans know a local source's size without reading it.
	for src, want := range map[string]int64{"m.bin": 1 << 20, "file://" + filepath.Join(dir, "m.bin"): 1 << 20, "missing.bin": 0, "https://example.com/m.bin": 0} {
		if got := env.st.LocalSize(src); got != want {
			t.Errorf("LocalSize(%s) = %d, want %d", src, got, want)
		}
	}
}

func TestOffline(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, digest := testData(64<<10, 9)
	srv.Add("/m", data)
	online := newTestStore(t, nil)
	if _, err := online.st.Fetch(testCtx(t), Request{Source: srv.Path("m")}); err != nil {
		t.Fatal(err)
	}
	offline, err := New(Config{Root: online.root, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(srv.Requests(""))
	if b, err := offline.Fetch(testCtx(t), Request{Source: srv.Path("m")}); err != nil || b.SHA256 != digest {
		t.Errorf("offline hit: %+v, %v", b, err)
	}
	_, err = offline.Fetch(testCtx(t), Request{Source: srv.Path("other")})
	if !errors.Is(err, ErrOffline) {
		t.Errorf("offline miss: err = %v, want ErrOffline", err)
	}
	if len(srv.Requests("")) != n {
		t.Error("offline store used the network")
	}
}

func TestAlternatives(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, digest := testData(64<<10, 10)
	srv.Add("/good", data)
	srv.Add("/bad", []byte("not the model"))
	env := newTestStore(t, nil)
	b, err := env.st.Fetch(testCtx(t), Request{Source: srv.Path("missing"),
		Alternatives: []string{srv.Path("bad"), srv.Path("good")}, SHA256: digest})
	if err != nil {
		t.Fatal(err)
	}
	if b.SHA256 != digest || b.Source != srv.Path("good") {
		t.Errorf("blob %+v", b)
	}
	if !strings.Contains(env.logs.String(), "trying the next one") {
		t.Error("no log line about the failed source")
	}

	_, otherDigest := testData(64<<10, 11)
	_, err = env.st.Fetch(testCtx(t), Request{Item: "loras/x.safetensors", Source: srv.Path("missing"),
		Alternatives: []string{srv.Path("bad")}, SHA256: otherDigest})
	var ce *ChecksumError
	if err == nil || !strings.Contains(err.Error(), "all 2 sources failed") || !strings.Contains(err.Error(), "loras/x.safetensors") || !errors.As(err, &ce) {
		t.Errorf("err = %v", err)
	}

	if _, err := env.st.Fetch(testCtx(t), Request{Source: srv.Path("good"), Alternatives: []string{"s3://b/k"}}); err == nil {
		t.Error("an invalid alternative was accepted")
	}
}
