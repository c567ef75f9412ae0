package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Test credentials. The secret is distinctive so a leak into a log, an
// error or a result is easy to find.
const (
	testS3Key    = "AKIDTESTWORKER"
	testS3Secret = "s3cr3t-never-printed-7f3a9c"
	testS3Region = "eu-test-1"
)

// s3Fault is what the fake does to one request instead of serving it.
type s3Fault int

const (
	s3Pass     s3Fault = iota
	s3Fail500          // an InternalError answer, which clients retry
	s3SlowDown         // 503 SlowDown, S3's throttling answer
	s3Drop             // the connection closed halfway through the body
	s3Deny             // 403 AccessDenied
	s3Truncate         // the store keeps only half the body and says OK
)

// fakeS3 is gofakes3 behind a real HTTP listener on 127.0.0.1. Like a
// real store it checks every request's SigV4 signature (header-signed
// calls and presigned URLs, with their expiry), and a hook can fail
// requests before gofakes3 sees them.
type fakeS3 struct {
	backend *s3mem.Backend
	ts      *httptest.Server
	tr      *http.Transport
	now     func() time.Time // the verifier's clock

	mu     sync.Mutex
	hook   func(r *http.Request) s3Fault
	counts map[string]int // requests by method
	hosts  map[string]bool
}

func newFakeS3(t testing.TB, opts []gofakes3.Option, buckets ...string) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New(), counts: map[string]int{}, hosts: map[string]bool{}, now: time.Now}
	for _, b := range buckets {
		if err := f.backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	f.ts = httptest.NewServer(f.wrap(gofakes3.New(f.backend, opts...).Server()))
	// Every host name reaches the fake, so virtual-hosted requests
	// (<bucket>.s3.example) work without DNS.
	addr := f.ts.Listener.Addr().String()
	f.tr = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(func() {
		f.tr.CloseIdleConnections()
		f.ts.Close()
	})
	return f
}

func (f *fakeS3) client() *http.Client { return &http.Client{Transport: f.tr} }

func (f *fakeS3) setHook(h func(r *http.Request) s3Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

func (f *fakeS3) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[method]
}

// config is an S3Config for the fake with the test credentials.
func (f *fakeS3) config(bucket string) S3Config {
	return S3Config{Endpoint: f.ts.URL, Region: testS3Region, Bucket: bucket, PathStyle: true,
		AccessKeyID: testS3Key, SecretAccessKey: testS3Secret, HTTPClient: f.client(),
		RetryBackoff: time.Millisecond, SignedURLTTL: time.Hour}
}

func (f *fakeS3) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.counts[r.Method]++
		f.hosts[r.Host] = true
		hook := f.hook
		f.mu.Unlock()
		if err := verifySigV4(r, f.now()); err != nil {
			s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch", err.Error())
			return
		}
		// gofakes3 matches virtual-hosted buckets on the bare host name.
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = host
		}
		fault := s3Pass
		if hook != nil {
			fault = hook(r)
		}
		switch fault {
		case s3Fail500:
			io.Copy(io.Discard, r.Body)
			s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
		case s3SlowDown:
			io.Copy(io.Discard, r.Body)
			s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		case s3Deny:
			s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		case s3Drop:
			io.CopyN(io.Discard, r.Body, r.ContentLength/2)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		case s3Truncate:
			half := r.ContentLength / 2
			r.Body = io.NopCloser(io.LimitReader(r.Body, half))
			r.ContentLength = half
			r.Header.Set("Content-Length", strconv.FormatInt(half, 10))
			h.ServeHTTP(w, r)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

// verifySigV4 checks a request's signature with the test secret, as a
// store does: it rebuilds the canonical request from what arrived (only
// the headers the client says it signed) and compares signatures. For a
// presigned URL it also enforces X-Amz-Expires.
func verifySigV4(r *http.Request, now time.Time) error {
	creds := aws.Credentials{AccessKeyID: testS3Key, SecretAccessKey: testS3Secret}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	q := r.URL.Query()
	if got := q.Get("X-Amz-Signature"); got != "" {
		when, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
		if err != nil {
			return errors.New("bad X-Amz-Date")
		}
		exp, _ := strconv.Atoi(q.Get("X-Amz-Expires"))
		if now.After(when.Add(time.Duration(exp) * time.Second)) {
			return errors.New("Request has expired")
		}
		if !strings.HasPrefix(q.Get("X-Amz-Credential"), testS3Key+"/") {
			return errors.New("unknown access key")
		}
		for _, k := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
			q.Del(k)
		}
		u := *r.URL
		u.RawQuery = q.Encode()
		req, _ := http.NewRequest(r.Method, "http://"+r.Host+u.RequestURI(), nil)
		signed, _, err := signer.PresignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "s3", testS3Region, when)
		if err != nil {
			return err
		}
		su, _ := url.Parse(signed)
		if su.Query().Get("X-Amz-Signature") != got {
			return errors.New("The request signature we calculated does not match the signature you provided")
		}
		return nil
	}
	auth := r.Header.Get("Authorization")
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
			fields[k] = v
		}
	}
	if !strings.HasPrefix(fields["Credential"], testS3Key+"/") || !strings.Contains(fields["Credential"], "/"+testS3Region+"/") {
		return errors.New("unknown access key or wrong region")
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errors.New("bad X-Amz-Date")
	}
	req, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = r.ContentLength
		default:
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	if err := signer.SignHTTP(context.Background(), creds, req, r.Header.Get("X-Amz-Content-Sha256"), "s3", testS3Region, when); err != nil {
		return err
	}
	want := req.Header.Get("Authorization")
	if i := strings.Index(want, "Signature="); i < 0 || want[i+len("Signature="):] != fields["Signature"] {
		return errors.New("The request signature we calculated does not match the signature you provided")
	}
	return nil
}
