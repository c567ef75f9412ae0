package runpod

import (
	"context"
	"errors"
	"time"

	"github.com/runpod-comfy/worker/internal/ctxwait"
)

// heartbeatLoop pings at once and then every PingInterval until life ends.
// Each ping has its own deadline of one interval and is never retried in
// place (the next tick is the retry), so a slow or failing API can delay the
// heartbeat by at most one interval; job work never touches this goroutine.
func (w *Worker) heartbeatLoop(life context.Context) {
	interval := w.cfg.PingInterval
	timeout := max(interval, 100*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		w.mu.Lock()
		ids := w.heldIDs
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(life, timeout)
		err := w.c.ping(ctx, w.ep.pingURL(ids, w.cfg.RunpodVersion))
		cancel()
		switch {
		case err != nil && life.Err() == nil && !failing:
			w.log.Warn().Err(err).Msg("heartbeat failed; still trying every interval")
			failing = true
		case err == nil && failing:
			w.log.Info().Msg("heartbeat recovered")
			failing = false
		}
		select {
		case <-life.Done():
			return
		case <-t.C:
		}
	}
}

// stopLoop polls RunPod's per-job stop channel while any job is held, also
// while a handler blocks (the SDK only manages that for async handlers).
func (w *Worker) stopLoop(life context.Context) {
	for {
		busy, ok := w.waitBusy(life)
		if !ok {
			return
		}
		ids, err := w.c.pollStop(busy, w.ep.stop, w.cfg.TakeTimeout)
		if len(ids) > 0 {
			w.stopJobs(ids)
			continue
		}
		switch {
		case busy.Err() != nil:
		case errors.Is(err, errTooManyRequests):
			ctxwait.Sleep(busy, w.cfg.TooManyRequestsDelay)
		default:
			if err != nil {
				w.log.Debug().Err(err).Msg("stop channel poll failed")
			}
			ctxwait.Sleep(busy, w.cfg.StopPollInterval)
		}
	}
}

// waitBusy waits until a job is held and returns a context that ends when
// none is.
func (w *Worker) waitBusy(life context.Context) (context.Context, bool) {
	for {
		w.mu.Lock()
		busy, ch := w.busy, w.changed
		w.mu.Unlock()
		if life.Err() != nil {
			return nil, false
		}
		if busy != nil {
			return busy, true
		}
		select {
		case <-ch:
		case <-life.Done():
			return nil, false
		}
	}
}

// shutdownTimer gives running jobs ShutdownGrace after ctx ends, then cancels
// them with ErrShutdown so their handlers return a failure that can still be
// delivered.
func (w *Worker) shutdownTimer(ctx, life context.Context, cancelJobs context.CancelCauseFunc) {
	select {
	case <-life.Done():
		return
	case <-ctx.Done():
	}
	w.log.Info().Int64("grace_ms", w.cfg.ShutdownGrace.Milliseconds()).Msg("shutting down: no more jobs are taken; the running job may finish")
	t := time.NewTimer(w.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-life.Done():
	case <-t.C:
		w.log.Warn().Msg("shutdown grace period is over; cancelling the running job")
		cancelJobs(ErrShutdown)
	}
}
