package runpod

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/leaktest"
	"github.com/runpod-comfy/worker/internal/syncbuf"
	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// TestMain fails the run if any goroutine of this package outlives the tests.
func TestMain(m *testing.M) {
	leaktest.Main(m, leaktest.Options{Grace: 5 * time.Second, Only: []string{"worker/pkg/runpod."},
		Ignore: []string{"runpod.TestMain"}})
}

// testLogger logs to the test and to a buffer; at cleanup it fails the test
// if the API key appears in the logs.
func testLogger(t *testing.T, secret string) (zerolog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), buf)).With().Timestamp().Logger()
	t.Cleanup(func() {
		if secret != "" && strings.Contains(buf.String(), secret) {
			t.Errorf("the API key appears in the logs")
		}
	})
	return log, buf
}

// fastConfig is a worker configuration for a fake, with timings scaled down.
func fastConfig(t *testing.T, fake *runpodtest.Server) Config {
	t.Helper()
	env := fake.Env()
	env["RUNPOD_PING_INTERVAL"] = "50"
	cfg, err := ConfigFromEnv(runpodtest.Getenv(env))
	if err != nil {
		t.Fatal(err)
	}
	cfg.TooManyRequestsDelay = 300 * time.Millisecond
	cfg.StopPollInterval = 20 * time.Millisecond
	cfg.ResultRetryFor = 5 * time.Second
	cfg.ResultAttemptTimeout = time.Second
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 100 * time.Millisecond
	cfg.ShutdownGrace = 2 * time.Second
	cfg.ProgressTimeout = 2 * time.Second
	cfg.Version = "test"
	return cfg
}

// harness runs a Worker against a fake until the test ends.
type harness struct {
	fake   *runpodtest.Server
	cfg    Config
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func newFake(t *testing.T, opts runpodtest.Options) *runpodtest.Server {
	if opts.LongPoll == 0 {
		opts.LongPoll = 200 * time.Millisecond
	}
	if opts.APIKey == "" {
		opts.APIKey = "secret-key-123"
	}
	fake := runpodtest.New(opts)
	t.Cleanup(fake.Close)
	return fake
}

// start runs a worker with h; edit may change the config first.
func start(t *testing.T, fake *runpodtest.Server, h Handler, edit func(*Config)) *harness {
	t.Helper()
	cfg := fastConfig(t, fake)
	if edit != nil {
		edit(&cfg)
	}
	log, logs := testLogger(t, fake.APIKey())
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	w, err := NewWorker(cfg, h, WithLogger(log), WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hs := &harness{fake: fake, cfg: cfg, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { hs.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-hs.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
		tr.CloseIdleConnections()
	})
	return hs
}

// stop cancels Run and returns its error, failing after d.
func (hs *harness) stop(t *testing.T, d time.Duration) error {
	t.Helper()
	hs.cancel()
	return hs.wait(t, d)
}

func (hs *harness) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-hs.done:
		hs.done <- err // keep it for cleanup
		return err
	case <-time.After(d):
		t.Fatalf("Run did not return within %s", d)
		return nil
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// jsonEq compares two JSON texts by value.
func jsonEq(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

// echo is a handler that returns its input as output.
func echo(ctx context.Context, j Job, p Progress) Result {
	return Result{Output: j.Input}
}
