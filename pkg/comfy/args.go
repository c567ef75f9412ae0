package comfy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SupportsDatabaseURL reports whether the ComfyUI in dir accepts
// --database-url. ComfyUI added the flag (and its SQLite database) in 2025;
// older versions exit with "unrecognized arguments" when given it. The flag
// is looked for in comfy/cli_args.py, where every ComfyUI flag is declared,
// so the answer comes from the installed source rather than a version table.
func SupportsDatabaseURL(dir string) bool {
	src, err := os.ReadFile(filepath.Join(dir, "comfy", "cli_args.py"))
	return err == nil && strings.Contains(string(src), `"--database-url"`)
}

// DetectGPU reports whether a GPU device node is visible: NVIDIA
// (/dev/nvidiactl, /dev/nvidia0), AMD ROCm (/dev/kfd) or WSL (/dev/dxg).
// Without one ComfyUI must be started with --cpu or it fails at start-up.
func DetectGPU() bool {
	for _, p := range []string{"/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// Flags that cannot be combined with --cpu (one argparse group in ComfyUI).
var cpuExclusive = []string{"--cpu", "--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram", "--directml"}

// netArgs is what the caller's extra arguments say about where to listen.
type netArgs struct {
	listen *string
	port   *int
	rest   []string
}

// splitNetArgs takes --listen [IP] and --port N out of extra arguments, so
// that a user's "-- --port 8190" is honoured (argparse lets the last one win)
// and the supervisor still knows which port to probe.
func splitNetArgs(extra []string) (netArgs, error) {
	var na netArgs
	for i := 0; i < len(extra); i++ {
		a := extra[i]
		name, val, hasVal := strings.Cut(a, "=")
		switch name {
		case "--listen":
			if !hasVal {
				val = "0.0.0.0,::" // ComfyUI's const for a bare --listen
				if i+1 < len(extra) && !strings.HasPrefix(extra[i+1], "-") {
					val = extra[i+1]
					i++
				}
			}
			na.listen = &val
		case "--port":
			if !hasVal {
				if i+1 >= len(extra) {
					return na, fmt.Errorf("ComfyUI argument --port needs a value")
				}
				val = extra[i+1]
				i++
			}
			p, err := strconv.Atoi(val)
			if err != nil || p < 0 || p > 65535 {
				return na, fmt.Errorf("ComfyUI argument --port %q is not a port number", val)
			}
			na.port = &p
		default:
			na.rest = append(na.rest, a)
		}
	}
	return na, nil
}

// probeHost is the address to reach a ComfyUI listening on listen: the
// first of a comma list, with wildcard addresses replaced by loopback.
func probeHost(listen string) string {
	h := strings.TrimSpace(strings.Split(listen, ",")[0])
	switch h {
	case "", "0.0.0.0":
		return "127.0.0.1"
	case "::", "[::]":
		return "::1"
	}
	return strings.Trim(h, "[]")
}

// freePort asks the kernel for a port that is free on host right now.
// Another process may take it before ComfyUI binds it; Start retries then.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func hasAnyFlag(args []string, flags ...string) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		if slices.Contains(flags, name) {
			return true
		}
	}
	return false
}

// buildEnv composes the child's environment: base (the worker's own when
// nil), then the spec's env, then PYTHONUNBUFFERED=1 unless set, so a
// crash's last lines reach the log instead of dying in a buffer.
func buildEnv(base []string, env map[string]string) []string {
	if base == nil {
		base = os.Environ()
	}
	idx := map[string]int{}
	out := make([]string, 0, len(base)+len(env)+1)
	set := func(k, v string) {
		if i, ok := idx[k]; ok {
			out[i] = k + "=" + v
			return
		}
		idx[k] = len(out)
		out = append(out, k+"="+v)
	}
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		set(k, env[k])
	}
	if _, ok := idx["PYTHONUNBUFFERED"]; !ok {
		set("PYTHONUNBUFFERED", "1")
	}
	return out
}

// gpuHidden reports whether the environment hides every CUDA device.
func gpuHidden(env []string) bool {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "CUDA_VISIBLE_DEVICES="); ok {
			v = strings.TrimSpace(v)
			return v == "" || v == "-1" || strings.EqualFold(v, "none") || v == "NoDevFiles"
		}
	}
	return false
}
