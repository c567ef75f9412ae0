package runpod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/runpod-comfy/worker/pkg/runpod/runpodtest"
)

func TestResultDeliveredExactlyOnceDespiteFailures(t *testing.T) {
	fake := newFake(t, runpodtest.Options{})
	fake.Inject(runpodtest.RouteDone,
		runpodtest.Fault{Status: 500},
		runpodtest.Fault{Drop: true},
		runpodtest.Fault{Status: 502},
		runpodtest.Fault{Drop: true},
		runpodtest.Fault{Delay: 1500 * time.Millisecond}, // longer than one attempt may take
		runpodtest.Fault{Status: 503},
	)
	fake.AddJobs(runpodtest.Job{ID: "j1", Input: map[string]any{"prompt": "a <b> & c"}})
	start(t, fake, echo, nil)
	ctx := ctxFor(t, 15*time.Second)

	res, err := fake.WaitResult(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	jsonEq(t, res.Output, `{"prompt": "a <b> & c"}`)
	if strings.Join(res.Keys, ",") != "output" {
		t.Errorf("body keys %v, want only output", res.Keys)
	}
	// The worker goes back to taking jobs only after delivery has finished;
	// a take after the result proves no further post is coming.
	if err := fake.Wait(ctx, func() bool {
		ts := fake.Takes()
		return len(ts) > 0 && ts[len(ts)-1].Time.After(res.Time)
	}); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Results("j1")); n != 1 {
		t.Errorf("accepted results = %d, want exactly 1", n)
	}
	if n := len(fake.Requests(runpodtest.RouteDone)); n != 7 {
		t.Errorf("result attempts = %d, want 7 (6 faults + 1 success)", n)
	}
	h := res.Header
	for k, want := range map[string]string{
		"Authorization": fake.APIKey(),
		"Content-Type":  "application/x-www-form-urlencoded",
		"Charset":       "utf-8",
		"X-Request-Id":  "j1",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if ua := h.Get("User-Agent"); !strings.HasPrefix(ua, "RunPod-Go-Worker/test (") {
		t.Errorf("User-Agent %q", ua)
	}
	if res.RawQuery != "gpu=TEST&isStream=false" || res.WorkerID != "w1" {
		t.Errorf("result URL query %q worker %q", res.RawQuery, res.WorkerID)
	}
}

func TestResultDeliveryLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    runpodtest.Fault
		attempts func(n int) bool
	}{
		// A 4xx will not get better: one attempt, as the SDK.
		{"4xx is not retried", runpodtest.Fault{Status: 404}, func(n int) bool { return n == 1 }},
		// A 5xx forever: retried until ResultRetryFor runs out, then given up.
		{"5xx retried for a bounded time", runpodtest.Fault{Status: 500}, func(n int) bool { return n >= 3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, runpodtest.Options{})
			faults := make([]runpodtest.Fault, 200)
			for i := range faults {
				faults[i] = tc.fault
			}
			fake.Inject(runpodtest.RouteDone, faults...)
			fake.AddJobs(runpodtest.Job{ID: "lost", Input: 1})
			hs := start(t, fake, echo, func(c *Config) { c.ResultRetryFor = 400 * time.Millisecond })
			ctx := ctxFor(t, 10*time.Second)
			// The loop goes on after giving up: the next job is taken.
			if err := fake.Wait(ctx, func() bool { return strings.Contains(hs.logs.String(), "failed to return job results") }); err != nil {
				t.Fatal(err)
			}
			if _, err := fake.WaitRequests(ctx, runpodtest.RouteTake, 2); err != nil {
				t.Fatal(err)
			}
			if n := len(fake.Requests(runpodtest.RouteDone)); !tc.attempts(n) {
				t.Errorf("attempts = %d", n)
			}
		})
	}
}

func TestHeartbeatNotStarvedByBusyHandler(t *testing.T) {
	fake := newFake(t, runpodtest.Options{})
	fake.AddJobs(runpodtest.Job{ID: "j1", Input: 1})
	var release atomic.Bool
	busy := func(ctx context.Context, j Job, p Progress) Result {
		// Spin without ever yielding, the way a blocking handler might.
		for !release.Load() {
		}
		return Result{Output: "ok"}
	}
	start(t, fake, busy, nil)
	ctx := ctxFor(t, 10*time.Second)
	withJob := func(p runpodtest.Ping) bool { return strings.Join(p.JobIDs, ",") == "j1" }
	pings, err := fake.WaitPings(ctx, 6, withJob)
	release.Store(true)
	if err != nil {
		t.Fatal(err)
	}
	// Six pings while the handler never yields show the heartbeat is not
	// starved; the bound on a gap is loose because a loaded 2-core CI
	// machine can stall any goroutine for a few hundred milliseconds.
	for i := 1; i < len(pings); i++ {
		if gap := pings[i].Time.Sub(pings[i-1].Time); gap > time.Second {
			t.Errorf("gap of %s between pings with a 50ms interval", gap)
		}
	}
	p := pings[0]
	if p.RawQuery != "gpu=TEST&job_id=j1&runpod_version="+SDKVersion {
		t.Errorf("ping query %q", p.RawQuery)
	}
	if _, err := fake.WaitResult(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	// Once answered the job leaves the ping's list: job_id is omitted.
	after := time.Now()
	if _, err := fake.WaitPings(ctx, 1, func(p runpodtest.Ping) bool {
		return p.Time.After(after) && !p.HasJobIDsParam
	}); err != nil {
		t.Fatal(err)
	}
	pr := fake.Requests(runpodtest.RoutePing)[0]
	if pr.Header.Get("Authorization") != fake.APIKey() {
		t.Errorf("ping Authorization %q", pr.Header.Get("Authorization"))
	}
}

func TestProgressNeverBlocksAndIsCoalesced(t *testing.T) {
	fake := newFake(t, runpodtest.Options{})
	// The first progress post is slow; later updates must queue behind it
	// without holding up the handler.
	fake.Inject(runpodtest.RouteDone, runpodtest.Fault{Delay: 300 * time.Millisecond})
	fake.AddJobs(runpodtest.Job{ID: "j1", Input: 1})
	var updateTook time.Duration
	h := func(ctx context.Context, j Job, p Progress) Result {
		p.Update(map[string]int{"step": 1, "of": 50})
		// Once the first post is in flight (held by the fault) ...
		_ = fake.Wait(ctx, func() bool { return len(fake.Requests(runpodtest.RouteDone)) > 0 })
		start := time.Now()
		for i := 2; i <= 50; i++ {
			p.Update(map[string]int{"step": i, "of": 50})
		}
		updateTook = time.Since(start)
		// Wait for the newest value to land before finishing.
		_ = fake.Wait(ctx, func() bool {
			pr := fake.Progress("j1")
			return len(pr) > 0 && strings.Contains(string(pr[len(pr)-1].Output), `"step":50`)
		})
		return Result{Output: "done"}
	}
	start(t, fake, h, nil)
	ctx := ctxFor(t, 10*time.Second)
	res, err := fake.WaitResult(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if updateTook > 100*time.Millisecond {
		t.Errorf("49 updates took %s: Update blocks on the network", updateTook)
	}
	pr := fake.Progress("j1")
	// ... the 49 updates made meanwhile collapse into one: the newest.
	if len(pr) != 2 {
		t.Errorf("%d progress posts, want 2 (the slow first one, then the newest)", len(pr))
	}
	jsonEq(t, pr[0].Output, `{"step": 1, "of": 50}`)
	for _, p := range pr {
		if p.BodyStatus != "IN_PROGRESS" || p.RawQuery != "gpu=TEST&isStream=false" || !p.Time.Before(res.Time) {
			t.Errorf("progress post %+v", p)
		}
	}
	jsonEq(t, pr[len(pr)-1].Output, `{"step": 50, "of": 50}`)
	// No progress after the result.
	posts := fake.Posts("j1")
	if last := posts[len(posts)-1]; last.IsProgress() {
		t.Errorf("a progress update arrived after the result")
	}
}

func TestStopChannel(t *testing.T) {
	fake := newFake(t, runpodtest.Options{LongPoll: 50 * time.Millisecond})
	fake.AddList(runpodtest.Job{ID: "j1", Input: 1}, runpodtest.Job{ID: "j2", Input: 2})
	started := make(chan struct{})
	causes := make(chan error, 2)
	var ran atomic.Int32
	h := func(ctx context.Context, j Job, p Progress) Result {
		ran.Add(1)
		close(started)
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return Result{Error: "interrupted: " + context.Cause(ctx).Error()}
	}
	start(t, fake, h, nil)
	ctx := ctxFor(t, 10*time.Second)
	<-started
	// The stop channel is polled while the handler blocks.
	polls, err := fake.WaitRequests(ctx, runpodtest.RouteStop, 2)
	if err != nil {
		t.Fatal(err)
	}
	if polls[0].RawQuery != "gpu=TEST" || polls[0].WorkerID != "w1" {
		t.Errorf("stop poll %s?%s", polls[0].Path, polls[0].RawQuery)
	}
	fake.StopJobs("j2", "j1") // j2 is still queued behind j1
	select {
	case c := <-causes:
		if !errors.Is(c, ErrJobStopped) {
			t.Errorf("cause %v, want ErrJobStopped", c)
		}
	case <-ctx.Done():
		t.Fatal("handler was not cancelled")
	}
	// Both jobs leave the held list without any result posted.
	after := time.Now()
	if _, err := fake.WaitPings(ctx, 1, func(p runpodtest.Ping) bool { return p.Time.After(after) && !p.HasJobIDsParam }); err != nil {
		t.Fatal(err)
	}
	if _, err := fake.WaitRequests(ctx, runpodtest.RouteTake, 2); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Posts("")); n != 0 {
		t.Errorf("%d posts for stopped jobs, want none", n)
	}
	if ran.Load() != 1 {
		t.Errorf("handler ran %d times; the stopped queued job must not run", ran.Load())
	}
}

func TestTakeBackoff(t *testing.T) {
	for _, tc := range []struct {
		name         string
		status       int
		minGap       time.Duration
		maxGap       time.Duration
		wantLogEntry string
	}{
		{"429 pauses", 429, 300 * time.Millisecond, 2 * time.Second, "429"},
		{"5xx retries soon", 500, 0, 250 * time.Millisecond, "failed to get a job"},
		{"401 names the key", 401, 0, 250 * time.Millisecond, "check RUNPOD_AI_API_KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, runpodtest.Options{})
			fake.Inject(runpodtest.RouteTake, runpodtest.Fault{Status: tc.status})
			hs := start(t, fake, echo, nil)
			takes, err := fake.WaitRequests(ctxFor(t, 5*time.Second), runpodtest.RouteTake, 2)
			if err != nil {
				t.Fatal(err)
			}
			gap := takes[1].Time.Sub(takes[0].Time)
			if gap < tc.minGap || gap > tc.maxGap {
				t.Errorf("next take after %s, want %s..%s", gap, tc.minGap, tc.maxGap)
			}
			if !strings.Contains(hs.logs.String(), tc.wantLogEntry) {
				t.Errorf("logs lack %q", tc.wantLogEntry)
			}
		})
	}
}

func TestEmptyAnswersAndMalformedJobs(t *testing.T) {
	fake := newFake(t, runpodtest.Options{EmptyStatus: 400, LongPoll: 20 * time.Millisecond})
	fake.AddRaw(200, `not json`)
	fake.AddRaw(200, ``)
	fake.AddRaw(200, `{"input": {"no": "id"}}`)
	fake.AddRaw(200, `{"id": "noinput"}`)
	fake.AddJobs(runpodtest.Job{ID: "good", Input: "x"})
	var calls atomic.Int32
	h := func(ctx context.Context, j Job, p Progress) Result {
		calls.Add(1)
		return echo(ctx, j, p)
	}
	start(t, fake, h, nil)
	ctx := ctxFor(t, 5*time.Second)
	res, err := fake.WaitResult(ctx, "noinput")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.ErrorString(), "missing field") {
		t.Errorf("error %q", res.ErrorString())
	}
	good, err := fake.WaitResult(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	jsonEq(t, good.Output, `"x"`)
	if calls.Load() != 1 {
		t.Errorf("handler called %d times, want 1", calls.Load())
	}
	// Empty answers (400 here) keep the loop going without backoff errors.
	if _, err := fake.WaitRequests(ctx, runpodtest.RouteTake, 8); err != nil {
		t.Fatal(err)
	}
}

func TestListResponseRunsJobsInOrderOneAtATime(t *testing.T) {
	fake := newFake(t, runpodtest.Options{})
	fake.AddList(runpodtest.Job{ID: "a", Input: 1}, runpodtest.Job{ID: "b", Input: 2}, runpodtest.Job{ID: "c", Input: 3})
	var running, maxRunning atomic.Int32
	order := make(chan string, 3)
	h := func(ctx context.Context, j Job, p Progress) Result {
		n := running.Add(1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		order <- j.ID
		time.Sleep(30 * time.Millisecond)
		running.Add(-1)
		return echo(ctx, j, p)
	}
	start(t, fake, h, nil)
	ctx := ctxFor(t, 5*time.Second)
	var last runpodtest.Post
	for _, id := range []string{"a", "b", "c"} {
		r, err := fake.WaitResult(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		last = r
	}
	got := []string{<-order, <-order, <-order}
	if strings.Join(got, "") != "abc" || maxRunning.Load() != 1 {
		t.Errorf("order %v, max concurrent %d", got, maxRunning.Load())
	}
	// With one slot nothing is taken while the three are held.
	takes := fake.Takes()
	for _, tk := range takes[1:] {
		if tk.Time.Before(last.Time) {
			t.Errorf("a take at %s while jobs were held", tk.Time)
		}
	}
}

func TestConcurrencyUsesBatchTakeAndJobInProgress(t *testing.T) {
	fake := newFake(t, runpodtest.Options{LongPoll: 50 * time.Millisecond})
	release := make(chan struct{})
	h := func(ctx context.Context, j Job, p Progress) Result {
		<-release
		return echo(ctx, j, p)
	}
	start(t, fake, h, func(c *Config) { c.Concurrency = 2 })
	ctx := ctxFor(t, 5*time.Second)
	first, err := fake.WaitRequests(ctx, runpodtest.RouteTakeBatch, 1)
	if err != nil {
		t.Fatal(err)
	}
	if first[0].RawQuery != "gpu=TEST&batch_size=2&job_in_progress=0" {
		t.Errorf("batch take query %q", first[0].RawQuery)
	}
	fake.AddJobs(runpodtest.Job{ID: "a", Input: 1})
	// One slot left while "a" runs: a plain take that says a job is held.
	if err := fake.Wait(ctx, func() bool {
		for _, r := range fake.Requests(runpodtest.RouteTake) {
			if r.RawQuery == "gpu=TEST&job_in_progress=1" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if _, err := fake.WaitResult(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshWorkerPostsStopPodAndStopsTaking(t *testing.T) {
	fake := newFake(t, runpodtest.Options{})
	fake.AddJobs(runpodtest.Job{ID: "j1", Input: 1})
	h := func(ctx context.Context, j Job, p Progress) Result {
		return Result{Output: map[string]int{"a": 1}, RefreshWorker: true}
	}
	hs := start(t, fake, h, nil)
	if err := hs.wait(t, 5*time.Second); err != nil {
		t.Fatalf("Run = %v", err)
	}
	res := fake.Results("j1")
	if len(res) != 1 || !res[0].StopPod {
		t.Fatalf("results %+v", res)
	}
	jsonEq(t, res[0].Output, `{"a": 1}`)
	if strings.Join(res[0].Keys, ",") != "output,stopPod" {
		t.Errorf("keys %v", res[0].Keys)
	}
	takes := len(fake.Takes())
	fake.AddJobs(runpodtest.Job{ID: "j2", Input: 2})
	time.Sleep(100 * time.Millisecond)
	if len(fake.Takes()) != takes || fake.State("j2") != runpodtest.StateQueued {
		t.Errorf("the worker took a job after a refresh")
	}
}

func TestHandlerPanicFailsTheJob(t *testing.T) {
	fake := newFake(t, runpodtest.Options{})
	fake.AddJobs(runpodtest.Job{ID: "j1", Input: 1}, runpodtest.Job{ID: "j2", Input: 2})
	h := func(ctx context.Context, j Job, p Progress) Result {
		if j.ID == "j1" {
			panic("boom\nsecond line")
		}
		return echo(ctx, j, p)
	}
	start(t, fake, h, func(c *Config) { c.Hostname = "host-7" })
	ctx := ctxFor(t, 5*time.Second)
	res, err := fake.WaitResult(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if got := res.ErrorString(); got != "internal error: the job handler crashed: boom second line" {
		t.Errorf("error %q", got)
	}
	var details map[string]any
	if err := json.Unmarshal(res.Output, &details); err != nil {
		t.Fatal(err)
	}
	if details["error_type"] != "internal" || details["hostname"] != "host-7" || details["worker_id"] != "w1" ||
		!strings.Contains(details["error_traceback"].(string), "panic") {
		t.Errorf("details %v", details)
	}
	if _, err := fake.WaitResult(ctx, "j2"); err != nil {
		t.Fatal("the worker did not survive the panic:", err)
	}
}

// streamOutput is a JSONStream: a large JSON string produced on demand, and
// counting how many times it was read.
type streamOutput struct {
	text  string
	reads atomic.Int32
}

func (s *streamOutput) Len() int64 { return int64(len(s.text)) }
func (s *streamOutput) NewReader() io.Reader {
	s.reads.Add(1)
	return iotest.HalfReader(strings.NewReader(s.text))
}

// TestStreamedResultSurvivesRetries: an output encoded while it is sent is
// produced afresh for every attempt, and the accepted body is whole.
func TestStreamedResultSurvivesRetries(t *testing.T) {
	fake := newFake(t, runpodtest.Options{})
	fake.Inject(runpodtest.RouteDone, runpodtest.Fault{Status: 500}, runpodtest.Fault{Drop: true}, runpodtest.Fault{Status: 503})
	big := `{"blob": "` + strings.Repeat("QUJD", 1<<20) + `"}`
	out := &streamOutput{text: big}
	fake.AddJobs(runpodtest.Job{ID: "s1", Input: map[string]any{}})
	start(t, fake, func(ctx context.Context, j Job, p Progress) Result { return Result{Output: out} }, nil)
	res, err := fake.WaitResult(ctxFor(t, 15*time.Second), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Output) != big || res.Error != nil {
		t.Fatalf("accepted output is %d bytes, want %d", len(res.Output), len(big))
	}
	if cl := res.Header.Get("Content-Length"); cl != fmt.Sprint(len(`{"output": `)+len(big)+1) {
		t.Errorf("Content-Length %s", cl)
	}
	if n := out.reads.Load(); n < 4 {
		t.Errorf("the output was read %d times for 4 attempts", n)
	}
}
