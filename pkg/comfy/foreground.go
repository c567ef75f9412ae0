package comfy

import (
	"context"
	"errors"
	"time"
)

// Foreground starts ComfyUI, calls ready with its URL, and runs it until
// ctx ends (it is then stopped, with up to grace for a clean exit, and
// Foreground returns nil) or ComfyUI exits on its own (its error is
// returned): what a command that runs the web UI for a person does.
func (s *Supervisor) Foreground(ctx context.Context, grace time.Duration, ready func(url string)) error {
	url, err := s.Start(ctx)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(url)
	}
	select {
	case <-ctx.Done():
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		if err := s.Stop(stopCtx); err != nil && !errors.Is(err, ErrStopped) {
			return err
		}
		s.log.Info().Msg("ComfyUI stopped")
		return nil
	case <-s.Done():
		return s.Err()
	}
}
