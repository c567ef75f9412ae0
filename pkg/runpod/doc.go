// Package runpod is the RunPod serverless worker protocol: it takes jobs from
// the platform, runs them through a Handler, and delivers their results,
// while a heartbeat tells RunPod the worker is alive and a stop channel lets
// RunPod cancel a running job. It also has the two local modes of RunPod's
// Python SDK: one job from a test input (RunLocal) and a local HTTP API with
// /run, /runsync, /status and /health (APIServer).
//
// The wire protocol follows the official Python SDK v1.12.0 as observed on
// the wire (reference/protocols.md Part 1), with deliberate improvements:
//
//   - a result is never given up on a dropped connection or a 5xx answer: it
//     is retried with exponential backoff and jitter for a bounded time, and
//     never posted again after a success;
//   - the heartbeat runs on its own goroutine with its own deadline and never
//     waits on job work or on a failing ping's retries;
//   - the stop channel is polled during every job, not only for async
//     handlers, and cancels the job's context with ErrJobStopped;
//   - progress updates never block the handler: while one is in flight only
//     the newest pending value is kept;
//   - on shutdown (the caller cancels Run's context, e.g. on SIGTERM) no
//     more jobs are taken, the running job gets ShutdownGrace to finish
//     before its context is cancelled with ErrShutdown, and its result is
//     still delivered before Run returns. Stopping ComfyUI afterwards is the
//     caller's job;
//   - after a result with RefreshWorker ("stopPod": true) no more jobs are
//     taken and Run returns nil once held jobs are answered, so a job is
//     never started on a worker RunPod is about to replace (the SDK keeps
//     polling; only its config-level refresh_worker exits).
//
// A failed result is {"error": "<one line>"} plus, when the handler gives
// details, "output" holding them; a handler panic becomes such a failure
// with error_type "internal" and the stack, instead of the SDK's error string
// containing JSON.
//
// Configuration comes in through Config (ConfigFromEnv reads the RUNPOD_*
// variables through a getenv function the caller passes); the package never
// reads the environment itself.
package runpod
