package runpod

import (
	"bytes"
	"context"
	"net/http"
)

// runner executes queued jobs one at a time, like a worker with one slot.
// When ctx ends it fails whatever is still queued.
func (s *APIServer) runner(ctx context.Context) {
	for {
		j := s.nextJob(ctx)
		if j == nil {
			s.failQueued("the local API server shut down before the job started")
			return
		}
		s.run(ctx, j)
	}
}

func (s *APIServer) nextJob(ctx context.Context) *apiJob {
	for {
		s.mu.Lock()
		if ctx.Err() != nil {
			s.mu.Unlock()
			return nil
		}
		if len(s.queue) > 0 {
			j := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			j.status = StatusInProgress
			s.running = true
			s.notifyLocked()
			s.mu.Unlock()
			return j
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

func (s *APIServer) run(ctx context.Context, j *apiJob) {
	log := s.log.With().Str("job_id", j.id).Logger()
	log.Info().Msg("local API job started")
	progress := ProgressFunc(func(v any) {
		b, err := marshal(v)
		if err != nil {
			return
		}
		s.mu.Lock()
		if j.status == StatusInProgress {
			j.output = b
			s.notifyLocked()
		}
		s.mu.Unlock()
	})
	res := callHandler(ctx, s.h, Job{ID: j.id, Input: j.input}, progress, s.info)
	var out []byte
	if res.Output != nil || !res.Failed() {
		b, err := marshalOutput(res.Output)
		if err != nil {
			res = Result{Error: "internal error: the job's output could not be encoded as JSON: " + err.Error()}
		} else {
			out = b
		}
	}
	if res.Failed() {
		log.Warn().Str("error", res.Error).Msg("local API job failed")
	} else {
		log.Info().Msg("local API job completed")
	}
	s.mu.Lock()
	j.output, j.err = out, res.Error
	j.status = StatusCompleted
	if res.Failed() {
		j.status = StatusFailed
	}
	s.finishLocked(j)
	s.running = false
	s.mu.Unlock()
	s.sendWebhook(j)
}

// finishLocked counts a finished job and forgets the oldest ones beyond
// keepFinished, so a long session does not grow without bound.
func (s *APIServer) finishLocked(j *apiJob) {
	if j.status == StatusFailed {
		s.failed++
	} else {
		s.completed++
	}
	s.finished = append(s.finished, j.id)
	for len(s.finished) > keepFinished {
		delete(s.jobs, s.finished[0])
		s.finished = s.finished[1:]
	}
	s.notifyLocked()
}

func (s *APIServer) failQueued(msg string) {
	s.mu.Lock()
	queued := s.queue
	s.queue = nil
	for _, j := range queued {
		j.status, j.err = StatusFailed, msg
		s.finishLocked(j)
	}
	s.mu.Unlock()
	for _, j := range queued {
		s.sendWebhook(j)
	}
}

// sendWebhook posts the job's status body to its webhook, as the SDK's local
// server does (one try, 10 s). The server waits for it on shutdown.
func (s *APIServer) sendWebhook(j *apiJob) {
	if j.webhook == "" {
		return
	}
	body, err := marshal(s.statusBody(j.id))
	if err != nil {
		return
	}
	s.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.webhook, bytes.NewReader(body))
		if err != nil {
			s.log.Warn().Err(err).Str("job_id", j.id).Msg("webhook URL is invalid")
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.hc.Do(req)
		if err != nil {
			s.log.Warn().Err(err).Str("job_id", j.id).Msg("webhook post failed")
			return
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			s.log.Warn().Int("status", resp.StatusCode).Str("job_id", j.id).Msg("webhook answered with an error")
		}
	})
}
