package runpod

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/ctxwait"
)

// minTakeSpacing keeps a job API that answers "no job" at once (instead of
// holding the long poll) from turning the take loop into a busy loop.
const minTakeSpacing = 100 * time.Millisecond

// Option configures a Worker, RunLocal or an APIServer.
type Option func(*options)

type options struct {
	log zerolog.Logger
	hc  *http.Client
}

func buildOptions(opts []Option) options {
	o := options{log: zerolog.Nop()}
	for _, f := range opts {
		f(&o)
	}
	if o.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Take, stop poll, ping and result posts may all be open at once.
		t.MaxIdleConnsPerHost = 8
		o.hc = &http.Client{Transport: t}
	}
	return o
}

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option { return func(o *options) { o.log = l } }

// WithHTTPClient sets the HTTP client for the job API and webhooks. Its
// Timeout should be zero: every call has its own deadline.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.hc = c } }

// Worker is the RunPod job loop. Create it with NewWorker; Run it once.
type Worker struct {
	cfg       Config
	handler   Handler
	log       zerolog.Logger
	c         client
	ep        endpoints
	info      workerInfo
	heartbeat bool
	started   atomic.Bool

	mu         sync.Mutex
	changed    chan struct{}   // closed and replaced on every state change
	life       context.Context // Run's lifetime, parent of busy
	held       map[string]*heldJob
	order      []*heldJob         // held jobs in the order taken
	queue      []*heldJob         // held jobs not yet started
	heldIDs    string             // comma-joined ids of held jobs, for pings
	busy       context.Context    // live while any job is held
	busyCancel context.CancelFunc // ends busy
	noIntake   bool               // the take loop has ended
	stopTaking context.CancelFunc
}

// heldJob is a job taken from RunPod and not yet answered.
type heldJob struct {
	Job
	problem string                  // set when the job cannot run
	cancel  context.CancelCauseFunc // set while the handler runs
}

// ConfigError is a worker configuration RunPod's job API cannot be used
// with (a missing or malformed RUNPOD_* variable).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "runpod worker configuration: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// NewWorker checks cfg and prepares a worker; it does no I/O.
func NewWorker(cfg Config, h Handler, opts ...Option) (*Worker, error) {
	if h == nil {
		return nil, errors.New("runpod: nil handler")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, &ConfigError{err}
	}
	o := buildOptions(opts)
	workerID := cfg.PodID
	if workerID == "" {
		workerID = uuid.NewString()
	}
	w := &Worker{
		cfg:       cfg,
		handler:   h,
		log:       o.log.With().Str("worker_id", workerID).Logger(),
		c:         client{hc: o.hc, key: cfg.APIKey, ua: userAgent(cfg)},
		ep:        newEndpoints(cfg, workerID),
		info:      workerInfo{hostname: cfg.Hostname, workerID: workerID, runpodVersion: cfg.RunpodVersion},
		heartbeat: cfg.PingURL != "" && cfg.APIKey != "" && cfg.PodID != "",
		changed:   make(chan struct{}),
		held:      map[string]*heldJob{},
	}
	if w.info.hostname == "" {
		w.info.hostname = "unknown"
	}
	return w, nil
}

// Run takes and runs jobs until ctx is cancelled (SIGTERM) or a handler asks
// for a worker refresh. On cancellation it stops taking jobs, gives a running
// job ShutdownGrace to finish before cancelling it, delivers every result it
// owes, and returns nil. Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("runpod: Worker.Run called twice")
	}
	// life outlives ctx: heartbeats, stop polls and result deliveries go on
	// during shutdown until every held job is answered.
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	jobsCtx, cancelJobs := context.WithCancelCause(life)
	defer cancelJobs(nil)
	takeCtx, stopTaking := context.WithCancel(ctx)
	defer stopTaking()
	w.mu.Lock()
	w.life, w.stopTaking = life, stopTaking
	w.mu.Unlock()

	w.log.Info().Int("concurrency", w.cfg.Concurrency).Bool("heartbeat", w.heartbeat).
		Bool("stop_channel", w.ep.stop != "").Msg("runpod worker started")
	if !w.heartbeat {
		w.log.Warn().Msg("heartbeat off: it needs RUNPOD_WEBHOOK_PING, RUNPOD_AI_API_KEY and RUNPOD_POD_ID")
	}

	var bg sync.WaitGroup
	if w.heartbeat {
		bg.Go(func() { w.heartbeatLoop(life) })
	}
	if w.ep.stop != "" {
		bg.Go(func() { w.stopLoop(life) })
	}
	bg.Go(func() { w.shutdownTimer(ctx, life, cancelJobs) })
	var runners sync.WaitGroup
	for range w.cfg.Concurrency {
		runners.Go(func() { w.runner(ctx, jobsCtx, life) })
	}

	w.takeLoop(takeCtx)
	w.mu.Lock()
	w.noIntake = true
	w.notifyLocked()
	w.mu.Unlock()
	runners.Wait()
	endLife()
	bg.Wait()
	w.log.Info().Msg("runpod worker stopped")
	return nil
}

// notifyLocked wakes every waiter; w.mu must be held.
func (w *Worker) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// takeLoop asks for jobs whenever a slot is free, until ctx ends.
func (w *Worker) takeLoop(ctx context.Context) {
	b := backoff{initial: w.cfg.RetryInitial, max: w.cfg.RetryMax}
	for {
		n, inProgress, ok := w.waitSlot(ctx)
		if !ok {
			return
		}
		start := time.Now()
		jobs, err := w.c.take(ctx, w.ep.takeURL(n, inProgress), w.cfg.TakeTimeout)
		if len(jobs) > 0 {
			// Once taken a job is ours to answer, even if ctx just ended.
			b.reset()
			w.enqueue(jobs)
			continue
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errTooManyRequests):
			w.log.Warn().Int64("pause_ms", w.cfg.TooManyRequestsDelay.Milliseconds()).Msg("job-take answered 429 Too Many Requests; pausing")
			ctxwait.Sleep(ctx, w.cfg.TooManyRequestsDelay)
		case err != nil:
			d := b.next()
			w.log.Warn().Err(err).Int64("retry_in_ms", d.Milliseconds()).Msg("failed to get a job")
			ctxwait.Sleep(ctx, d)
		default:
			b.reset()
			if el := time.Since(start); el < minTakeSpacing {
				ctxwait.Sleep(ctx, minTakeSpacing-el)
			}
		}
	}
}

// waitSlot waits until fewer than Concurrency jobs are held and says how
// many to ask for and whether any job is held (job_in_progress).
func (w *Worker) waitSlot(ctx context.Context) (n int, inProgress, ok bool) {
	for {
		w.mu.Lock()
		held, ch := len(w.order), w.changed
		w.mu.Unlock()
		if ctx.Err() != nil {
			return 0, false, false
		}
		if held < w.cfg.Concurrency {
			return w.cfg.Concurrency - held, held > 0, true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, false, false
		}
	}
}

// enqueue records taken jobs as held and queues them for the runners.
func (w *Worker) enqueue(jobs []takenJob) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range jobs {
		switch {
		case j.ID == "":
			// Without an id there is nowhere to send an answer.
			w.log.Error().Msg("job-take returned a job without an id; it cannot be answered and is skipped")
			continue
		case w.held[j.ID] != nil:
			w.log.Warn().Str("job_id", j.ID).Msg("job-take returned a job this worker already holds; ignoring the copy")
			continue
		}
		hj := &heldJob{Job: j.Job, problem: j.problem}
		w.held[j.ID] = hj
		w.order = append(w.order, hj)
		w.queue = append(w.queue, hj)
		w.log.Info().Str("job_id", j.ID).Msg("job taken")
	}
	w.heldChangedLocked()
}

// heldChangedLocked refreshes what depends on the held set; w.mu held.
func (w *Worker) heldChangedLocked() {
	ids := make([]string, len(w.order))
	for i, hj := range w.order {
		ids[i] = hj.ID
	}
	w.heldIDs = strings.Join(ids, ",")
	switch {
	case len(w.order) > 0 && w.busy == nil:
		w.busy, w.busyCancel = context.WithCancel(w.life)
	case len(w.order) == 0 && w.busy != nil:
		w.busyCancel()
		w.busy, w.busyCancel = nil, nil
	}
	w.notifyLocked()
}

// release forgets an answered (or stopped) job.
func (w *Worker) release(hj *heldJob) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held[hj.ID] == hj {
		delete(w.held, hj.ID)
	}
	w.order = slices.DeleteFunc(w.order, func(x *heldJob) bool { return x == hj })
	w.queue = slices.DeleteFunc(w.queue, func(x *heldJob) bool { return x == hj })
	w.heldChangedLocked()
}

// next hands a runner the next queued job; false once the take loop has
// ended and the queue is empty.
func (w *Worker) next(life context.Context) (*heldJob, bool) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			hj := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return hj, true
		}
		if w.noIntake {
			w.mu.Unlock()
			return nil, false
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-life.Done():
			return nil, false
		}
	}
}
