package runpod

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

// TestShutdown covers the SIGTERM path: the caller cancels Run's context.
func TestShutdown(t *testing.T) {
	t.Run("running job finishes within the grace period", func(t *testing.T) {
		fake := newFake(t, runpodtest.Options{})
		fake.AddJobs(runpodtest.Job{ID: "j1", Input: 1})
		started, release := make(chan struct{}), make(chan struct{})
		var ctxErr atomic.Value
		h := func(ctx context.Context, j Job, p Progress) Result {
			close(started)
			<-release
			ctxErr.Store(context.Cause(ctx) != nil)
			return Result{Output: "finished"}
		}
		hs := start(t, fake, h, nil)
		<-started
		takes := len(fake.Takes())
		hs.cancel()
		time.Sleep(100 * time.Millisecond)
		close(release)
		if err := hs.wait(t, 5*time.Second); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if ctxErr.Load() != false {
			t.Errorf("the job's context was cancelled before the grace period ended")
		}
		res := fake.Results("j1")
		if len(res) != 1 {
			t.Fatalf("results %+v", res)
		}
		jsonEq(t, res[0].Output, `"finished"`)
		if n := len(fake.Takes()); n != takes {
			t.Errorf("%d takes after shutdown began", n-takes)
		}
	})

	t.Run("grace period ends: job cancelled, failure delivered", func(t *testing.T) {
		fake := newFake(t, runpodtest.Options{})
		fake.AddJobs(runpodtest.Job{ID: "j1", Input: 1})
		started := make(chan struct{})
		h := func(ctx context.Context, j Job, p Progress) Result {
			close(started)
			<-ctx.Done()
			return Result{Error: "job interrupted: " + context.Cause(ctx).Error()}
		}
		hs := start(t, fake, h, func(c *Config) { c.ShutdownGrace = 300 * time.Millisecond })
		<-started
		begin := time.Now()
		if err := hs.stop(t, 5*time.Second); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if el := time.Since(begin); el < 300*time.Millisecond {
			t.Errorf("Run returned after %s, before the grace period", el)
		}
		res := fake.Results("j1")
		if len(res) != 1 || res[0].ErrorString() != "job interrupted: "+ErrShutdown.Error() {
			t.Errorf("results %+v", res)
		}
	})

	t.Run("idle worker returns at once", func(t *testing.T) {
		fake := newFake(t, runpodtest.Options{LongPoll: 5 * time.Second})
		hs := start(t, fake, echo, nil)
		if _, err := fake.WaitRequests(ctxFor(t, 5*time.Second), runpodtest.RouteTake, 1); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		if err := hs.stop(t, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(begin); el > time.Second {
			t.Errorf("an idle worker took %s to stop", el)
		}
	})

	t.Run("queued jobs fail fast, running one finishes", func(t *testing.T) {
		fake := newFake(t, runpodtest.Options{})
		fake.AddList(runpodtest.Job{ID: "a", Input: 1}, runpodtest.Job{ID: "b", Input: 2})
		started, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		h := func(ctx context.Context, j Job, p Progress) Result {
			calls.Add(1)
			close(started)
			<-release
			return echo(ctx, j, p)
		}
		hs := start(t, fake, h, nil)
		<-started
		hs.cancel()
		close(release)
		if err := hs.wait(t, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		a, b := fake.Results("a"), fake.Results("b")
		if len(a) != 1 || a[0].Error != nil {
			t.Errorf("a: %+v", a)
		}
		if len(b) != 1 || !strings.Contains(b[0].ErrorString(), "shut down before the job started") {
			t.Errorf("b: %+v", b)
		}
		if calls.Load() != 1 {
			t.Errorf("handler called %d times", calls.Load())
		}
	})

	t.Run("result delivery outlives the grace period", func(t *testing.T) {
		fake := newFake(t, runpodtest.Options{})
		fake.AddJobs(runpodtest.Job{ID: "j1", Input: 1})
		fake.Inject(runpodtest.RouteDone, runpodtest.Fault{Status: 503}, runpodtest.Fault{Drop: true}, runpodtest.Fault{Status: 500})
		h := func(ctx context.Context, j Job, p Progress) Result {
			<-ctx.Done()
			return Result{Error: "interrupted"}
		}
		hs := start(t, fake, h, func(c *Config) { c.ShutdownGrace = 50 * time.Millisecond })
		if _, err := fake.WaitRequests(ctxFor(t, 5*time.Second), runpodtest.RouteStop, 1); err != nil {
			t.Fatal(err)
		}
		if err := hs.stop(t, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if n := len(fake.Results("j1")); n != 1 {
			t.Errorf("%d results delivered, want 1", n)
		}
		if len(fake.Requests(runpodtest.RouteDone)) != 4 {
			t.Errorf("attempts %d, want 4", len(fake.Requests(runpodtest.RouteDone)))
		}
	})
}
