package runpod

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/ctxwait"
)

// resultSizeHint is RunPod's documented result limit; larger bodies are
// still sent (the platform decides) but logged, like the SDK's tip.
const resultSizeHint = 20 << 20

// runner runs queued jobs one after another until there are no more.
func (w *Worker) runner(ctx, jobsCtx, life context.Context) {
	for {
		hj, ok := w.next(life)
		if !ok {
			return
		}
		w.runJob(ctx, jobsCtx, life, hj)
	}
}

// runJob runs one held job and delivers its result. ctx is Run's context:
// once it is done, jobs that have not started are failed at once instead of
// run, so that shutdown only waits for the job already running.
func (w *Worker) runJob(ctx, jobsCtx, life context.Context, hj *heldJob) {
	log := w.log.With().Str("job_id", hj.ID).Logger()
	defer w.release(hj)
	var res Result
	switch {
	case hj.problem != "":
		log.Error().Str("problem", hj.problem).Msg("job cannot run")
		res = Result{Error: hj.problem + `: RunPod sent a job without "input"`, Output: map[string]any{"error_type": "input"}}
	case ctx.Err() != nil:
		log.Warn().Msg("worker is shutting down; failing a job that had not started")
		res = Result{
			Error:  "the worker shut down before the job started; send the request again",
			Output: map[string]any{"error_type": "internal"},
		}
	default:
		jctx, cancel := context.WithCancelCause(jobsCtx)
		if !w.setRunning(hj, cancel) {
			cancel(ErrJobStopped)
			log.Info().Msg("job stopped by RunPod before it started; no result is posted")
			return
		}
		ps := newProgressSender(life, w, hj.ID, log)
		start := time.Now()
		log.Info().Msg("job started")
		res = callHandler(jctx, w.handler, hj.Job, ps, w.info)
		ps.close()
		stopped := errors.Is(context.Cause(jctx), ErrJobStopped)
		cancel(nil)
		ev := log.Info()
		if res.Failed() {
			ev = log.Warn().Str("error", res.Error)
		}
		ev.Int64("took_ms", time.Since(start).Milliseconds()).Bool("failed", res.Failed()).Msg("job finished")
		if stopped && res.Failed() {
			// RunPod has already ended the request; the SDK posts nothing.
			log.Info().Msg("job was stopped by RunPod; no result is posted")
			return
		}
	}
	body := encodeResult(res)
	if body.len() > resultSizeHint {
		log.Warn().Int("bytes", body.len()).Msg("result exceeds RunPod's 20 MB limit and may be refused")
	}
	if err := w.deliver(life, hj.ID, body, log); err != nil {
		log.Error().Err(err).Msg("failed to return job results; the job will time out on RunPod")
	}
	if res.RefreshWorker {
		log.Info().Msg("handler asked for a worker refresh (stopPod): taking no more jobs")
		w.mu.Lock()
		w.stopTaking()
		w.mu.Unlock()
	}
}

// setRunning registers the job's cancel function for the stop channel; false
// if RunPod stopped the job while it was queued.
func (w *Worker) setRunning(hj *heldJob, cancel context.CancelCauseFunc) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held[hj.ID] != hj {
		return false
	}
	hj.cancel = cancel
	return true
}

// stopJobs cancels running jobs and drops queued ones that RunPod stopped.
func (w *Worker) stopJobs(ids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		hj := w.held[id]
		if hj == nil {
			continue
		}
		w.log.Info().Str("job_id", id).Msg("RunPod asked to stop the job")
		if hj.cancel != nil {
			hj.cancel(ErrJobStopped)
			continue
		}
		// Not started: forget it; the SDK posts nothing for a stopped job.
		delete(w.held, id)
		w.order = slices.DeleteFunc(w.order, func(x *heldJob) bool { return x == hj })
		w.queue = slices.DeleteFunc(w.queue, func(x *heldJob) bool { return x == hj })
	}
	w.heldChangedLocked()
}

// deliver posts a result until RunPod accepts it. Unlike the SDK (3 tries,
// 5xx only) it retries dropped connections, timeouts, 5xx, 408 and 429 with
// backoff for up to ResultRetryFor. Attempts never overlap and stop at the
// first 2xx, so an accepted result is never posted again. (A connection
// that drops after the platform has processed a post cannot be told from
// one that drops before; that post is retried.)
func (w *Worker) deliver(ctx context.Context, jobID string, body body, log zerolog.Logger) error {
	url := w.ep.doneURL(jobID)
	deadline := time.Now().Add(w.cfg.ResultRetryFor)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	b := backoff{initial: w.cfg.RetryInitial, max: w.cfg.RetryMax}
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, w.cfg.ResultAttemptTimeout)
		err := w.c.post(actx, url, jobID, body)
		acancel()
		if err == nil {
			if attempt > 1 {
				log.Info().Int("attempts", attempt).Msg("result delivered after retries")
			} else {
				log.Debug().Msg("result delivered")
			}
			return nil
		}
		var se *HTTPStatusError
		if errors.As(err, &se) && !se.Temporary() {
			return fmt.Errorf("RunPod refused the result: %w", err)
		}
		d := b.next()
		if time.Until(deadline) <= d || ctx.Err() != nil {
			return fmt.Errorf("gave up after %d attempts in %s: %w", attempt, w.cfg.ResultRetryFor, err)
		}
		log.Warn().Err(err).Int("attempt", attempt).Int64("retry_in_ms", d.Milliseconds()).Msg("result post failed; retrying")
		ctxwait.Sleep(ctx, d)
	}
}

// progressSender posts a job's progress updates in the background, keeping
// only the newest while one is in flight.
type progressSender struct {
	w      *Worker
	url    string
	jobID  string
	log    zerolog.Logger
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	pending body
	closed  bool
}

func newProgressSender(life context.Context, w *Worker, jobID string, log zerolog.Logger) *progressSender {
	ctx, cancel := context.WithCancel(life)
	p := &progressSender{
		w: w, url: w.ep.doneURL(jobID), jobID: jobID, log: log,
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
	}
	go p.loop(ctx)
	return p
}

// Update encodes v now (so the caller may reuse it) and hands it to the
// sender without waiting.
func (p *progressSender) Update(v any) {
	body, err := encodeProgress(v)
	if err != nil {
		p.log.Warn().Err(err).Msg("progress value is not JSON; dropped")
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.pending = body
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *progressSender) loop(ctx context.Context) {
	defer close(p.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		p.mu.Lock()
		body := p.pending
		p.pending = nil
		p.mu.Unlock()
		if body == nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, p.w.cfg.ProgressTimeout)
		err := p.w.c.post(pctx, p.url, p.jobID, body)
		cancel()
		if err != nil && ctx.Err() == nil {
			p.log.Debug().Err(err).Msg("progress update not delivered")
		}
	}
}

// close stops the sender before the final result is posted, so no progress
// update can follow the result.
func (p *progressSender) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	<-p.done
}
