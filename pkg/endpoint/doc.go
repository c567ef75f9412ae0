// Package endpoint is the caller's side of a deployed RunPod serverless
// endpoint: it sends a job (`worker call`), follows it to a terminal state
// while reporting progress, cancels it when the caller gives up, and writes
// the files of the result into a directory.
//
// # Wire protocol
//
// The public endpoint API of reference/protocols.md §1.11:
// POST {base}/{endpoint}/run and /runsync with {"input": {...}}, status at
// /status/{id}, partial outputs at /stream/{id}, POST /cancel/{id}, GET
// /health. Terminal states are COMPLETED, FAILED, CANCELLED and TIMED_OUT.
//
// # Use of the official Go SDK
//
// /run, /status, /cancel and /health go through the official
// github.com/runpod/go-sdk/pkg/sdk/endpoint package (version
// v0.0.0-20240315175250-b8aca7812ff3). Its base URL is the EndpointUrl
// option, so tests point it at a fake server without touching transports.
// That SDK version has limits this package works around:
//
//   - No context.Context: each SDK call runs in a goroutine owned by the
//     Client (Close waits for it) and the caller stops waiting as soon as its
//     context ends. The SDK bounds every call with its own per-request
//     timeout (Config.RequestTimeout, rounded up to whole seconds), so an
//     abandoned call ends by itself. A /run abandoned in flight cancels the
//     job it created as soon as its id arrives.
//   - It builds its own http.Client on http.DefaultTransport, so
//     Config.HTTPClient does not apply to those four calls.
//   - A non-200 answer is reported as the text "response status <code>"
//     without the body; the code is parsed back into an *APIError.
//   - The job input is a map[string]interface{}; the input is decoded with
//     json.Number so large integers (ComfyUI seeds up to 2^64) keep every
//     digit when the SDK re-encodes them.
//   - The status output is an interface{}; numbers in a result are
//     therefore float64 on the way through (file sizes and timings are far
//     below 2^53) and object keys come back sorted. Its "error" is a
//     *string: an answer with any other error value fails its decoding and
//     is read again without the SDK.
//
// Written here instead: /runsync, because the SDK's RunSync ignores any
// context, polls /status-sync from goroutines that leak when its own
// timeout fires, and hides the progress of a job still running after the
// wait window (this package falls back to polling /status, as RunPod
// documents); and /stream, because the SDK's Stream has the same goroutine
// and context problems and closes the caller's channel. Both use
// Config.HTTPClient, send the input without re-encoding it (only
// compacted) and keep the answer's JSON as sent.
//
// # Outputs
//
// WriteOutputs understands the result shapes this worker produces
// (pkg/output): the default {outputs: [{filename, base64 | url, sha256,
// size, ...}]}, the original tool's single {base64, extension} or
// {url, signed_url, ...}, and worker-comfyui's {images: [{filename, type,
// data}]}. Every file is written under a sanitised name inside the output
// directory, never over an existing file, through a temp file that is
// renamed into place only after its sha256 and size check out.
package endpoint
