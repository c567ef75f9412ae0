// Package comfy runs ComfyUI and drives prompts on it.
//
// Two independent halves:
//
//   - Supervisor starts one ComfyUI process (`<python> main.py` with
//     per-worker input/output/temp/user directories, a free port on
//     127.0.0.1, --cpu when no GPU is visible), waits until GET
//     /system_stats answers, reports an exit during start-up at once with
//     the log tail and the custom nodes that failed to import, signals a
//     later crash through Done/Err, and stops the whole process group
//     (SIGTERM, then SIGKILL after a grace period). It knows nothing about
//     prompts.
//   - Client submits a workflow over HTTP, follows it over the WebSocket
//     (falling back to polling the history when the socket drops or goes
//     silent), turns ComfyUI's failures into typed errors
//     (*ValidationError, *ExecutionError, *TimeoutError, *InterruptedError,
//     *CrashError), uploads inputs and streams every output file to disk.
//     It knows nothing about processes beyond an optional death signal
//     (Process), which *Supervisor provides.
//
// Behaviour follows the ComfyUI API as recorded against v0.3.12 and
// v0.3.64 and the newest master; comfytest holds a fake that reproduces it.
package comfy
