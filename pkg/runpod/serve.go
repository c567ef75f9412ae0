package runpod

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Mode is how a worker started without a subcommand runs.
type Mode int

// The modes, as RunPod's SDK chooses among them.
const (
	// ModeJobLoop takes jobs from RunPod's job API.
	ModeJobLoop Mode = iota
	// ModeLocalAPI serves /run, /runsync, /status locally (--rp_serve_api).
	ModeLocalAPI
	// ModeRealtime serves the same API on RUNPOD_REALTIME_PORT.
	ModeRealtime
	// ModeOneJob runs one job from --test_input or ./test_input.json.
	ModeOneJob
)

// ChooseMode decides as the SDK does: the local API with --rp_serve_api,
// or the API on RUNPOD_REALTIME_PORT when that is set; one local job from
// --test_input (even on RunPod) or, without RUNPOD_WEBHOOK_GET_JOB, from
// ./test_input.json; else the job loop.
func ChooseMode(cfg Config, serveAPI, testInputGiven bool) Mode {
	switch {
	case serveAPI:
		return ModeLocalAPI
	case cfg.RealtimePort != 0:
		return ModeRealtime
	case cfg.Local() || testInputGiven:
		return ModeOneJob
	}
	return ModeJobLoop
}

// OnRunPod reports whether the mode runs on RunPod's infrastructure (and
// so with its network volume, when the endpoint has one).
func (m Mode) OnRunPod() bool { return m == ModeJobLoop || m == ModeRealtime }

// ServeOptions are the SDK's command-line settings for Serve.
type ServeOptions struct {
	// APIHost and APIPort are where ModeLocalAPI listens. In
	// ModeRealtime the API listens on every interface unless APIHostSet.
	APIHost    string
	APIHostSet bool
	APIPort    int
	// TestInput and Out are ModeOneJob's input and where its result goes.
	TestInput string
	Out       io.Writer
	// Started is called once the job loop is running (ModeJobLoop).
	Started func()
}

// ErrJobFailed is ModeOneJob's job failing; its result, with the error,
// was written already.
var ErrJobFailed = errors.New("the job failed")

// Serve runs h in mode until ctx ends (or, in ModeOneJob, the job does).
func Serve(ctx context.Context, mode Mode, h Handler, cfg Config, so ServeOptions, opts ...Option) error {
	log := buildOptions(opts).log
	switch mode {
	case ModeLocalAPI:
		log.Info().Str("addr", fmt.Sprintf("%s:%d", so.APIHost, so.APIPort)).Msg("serving the local RunPod API")
		return NewAPIServer(h, cfg, opts...).ListenAndServe(ctx, so.APIHost, so.APIPort)
	case ModeRealtime:
		host := "0.0.0.0"
		if so.APIHostSet {
			host = so.APIHost
		}
		log.Info().Str("addr", fmt.Sprintf("%s:%d", host, cfg.RealtimePort)).Msg("RUNPOD_REALTIME_PORT is set: serving the RunPod API")
		return NewAPIServer(h, cfg, opts...).ListenAndServe(ctx, host, cfg.RealtimePort)
	case ModeOneJob:
		if RunLocal(ctx, h, LocalOptions{TestInput: so.TestInput, Out: so.Out, Config: cfg}, opts...) != ExitOK {
			return ErrJobFailed
		}
		return nil
	}
	w, err := NewWorker(cfg, h, opts...)
	if err != nil {
		return err
	}
	log.Info().Msg("RunPod worker started")
	if so.Started != nil {
		so.Started()
	}
	return w.Run(ctx)
}
