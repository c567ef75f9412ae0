// Command fakecomfy stands in for `python main.py` in supervisor tests: it
// accepts ComfyUI's command line (and rejects what ComfyUI's argparse
// rejects), prints ComfyUI-like start-up logs to stderr and serves the
// comfytest fake protocol on --listen/--port.
//
// It is launched as `fakecomfy main.py ARGS...` (a one-line "python" script
// execs it), from a directory that must hold main.py, like the real thing.
// --database-url is accepted only when comfy/cli_args.py in that directory
// mentions it, as only newer ComfyUI versions know the flag.
//
// Behaviour is chosen through the environment:
//
//	FAKECOMFY_VERSION        comfytest version to imitate (default 0.3.64)
//	FAKECOMFY_MODE           comma list of:
//	    exit-at-start        print an error and exit (FAKECOMFY_EXIT_CODE, default 1) before listening
//	    hang-at-start        never listen
//	    crash-on-prompt      kill itself with SIGKILL when a prompt starts executing; with
//	                         FAKECOMFY_CRASH_MARKER=<file>, only while that file does not
//	                         exist yet (it is created first), so a restart runs normally
//	    ignore-sigterm       ignore SIGTERM (only SIGKILL stops it)
//	    spawn-child          start a child process that ignores SIGTERM and shares stdout/stderr
//	FAKECOMFY_START_DELAY    Go duration to wait before listening (slow start)
//	FAKECOMFY_IMPORT_FAILED  comma list of custom node names to report as failed imports
//	FAKECOMFY_RECORD         file to write a JSON record of argv, cwd, pid, child pid,
//	                         selected env and the moment the port was bound
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runpod-comfy/worker/pkg/comfy/comfytest"
)

// Record is what FAKECOMFY_RECORD receives.
type Record struct {
	Argv        []string          `json:"argv"`
	Cwd         string            `json:"cwd"`
	PID         int               `json:"pid"`
	ChildPID    int               `json:"child_pid,omitempty"`
	Env         map[string]string `json:"env"`
	ListeningAt int64             `json:"listening_at_unix_nano,omitempty"`
	Dirs        map[string]string `json:"dirs"`
}

var logOut io.Writer = os.Stderr

func logf(format string, args ...any) { fmt.Fprintf(logOut, format+"\n", args...) }

func main() {
	if os.Getenv("FAKECOMFY_CHILD") == "1" {
		signal.Ignore(syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "fake child helper running")
		select {}
	}
	os.Exit(run())
}

func run() int {
	modes := map[string]bool{}
	for _, m := range strings.Split(os.Getenv("FAKECOMFY_MODE"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			modes[m] = true
		}
	}
	if modes["ignore-sigterm"] {
		signal.Ignore(syscall.SIGTERM)
	}
	cwd, _ := os.Getwd()
	args := os.Args[1:]
	if len(args) == 0 || args[0] != "main.py" {
		fmt.Fprintln(os.Stderr, "fakecomfy: first argument must be main.py")
		return 2
	}
	if _, err := os.Stat(filepath.Join(cwd, "main.py")); err != nil {
		fmt.Fprintf(os.Stderr, "python3: can't open file '%s': [Errno 2] No such file or directory\n", filepath.Join(cwd, "main.py"))
		return 2
	}
	opts, err := parseArgs(args[1:], cwd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "usage: main.py [-h] [--listen [IP]] [--port PORT] ...\nmain.py: error: %v\n", err)
		return 2
	}
	if opts.logStdout {
		logOut = os.Stdout
	}
	rec := &Record{Argv: os.Args, Cwd: cwd, PID: os.Getpid(), Env: map[string]string{}, Dirs: map[string]string{
		"input": opts.input, "output": opts.output, "temp": opts.temp, "user": opts.user, "database_url": opts.databaseURL,
	}}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FAKECOMFY_") || strings.HasPrefix(k, "TEST_") || k == "CUDA_VISIBLE_DEVICES" || k == "PYTHONUNBUFFERED" {
			rec.Env[k] = v
		}
	}
	writeRecord(rec)

	if modes["spawn-child"] {
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), "FAKECOMFY_CHILD=1")
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			logf("cannot start child: %v", err)
			return 1
		}
		rec.ChildPID = child.Process.Pid
		writeRecord(rec)
	}

	logf("Checkpoint files will always be loaded safely.")
	logf("Total VRAM 7941 MB, total RAM 7941 MB")
	logf("pytorch version: 2.8.0+cpu")
	if opts.cpu {
		logf("Set vram state to: DISABLED")
	} else {
		logf("Set vram state to: NORMAL_VRAM")
	}
	logf("Device: cpu")
	logf("ComfyUI version: %s", version())
	printImports(cwd)
	if modes["exit-at-start"] {
		logf("Traceback (most recent call last):")
		logf("  File \"%s/main.py\", line 147, in <module>", cwd)
		logf("    import execution")
		logf("RuntimeError: fake start-up failure requested by FAKECOMFY_MODE")
		code, err := strconv.Atoi(os.Getenv("FAKECOMFY_EXIT_CODE"))
		if err != nil {
			code = 1
		}
		return code
	}
	if d, err := time.ParseDuration(os.Getenv("FAKECOMFY_START_DELAY")); err == nil && d > 0 {
		time.Sleep(d)
	}
	if modes["hang-at-start"] {
		logf("loading custom nodes (hangs)...")
		select {}
	}

	for _, d := range []string{opts.input, opts.output, opts.user} {
		os.MkdirAll(d, 0o755)
	}
	// ComfyUI wipes its temp directory at start-up.
	os.RemoveAll(opts.temp)
	os.MkdirAll(opts.temp, 0o755)

	srvOpts := comfytest.Options{
		Version: version(), InputDir: opts.input, OutputDir: opts.output, TempDir: opts.temp,
		Argv: append([]string{"main.py"}, args[1:]...), Logf: logf,
	}
	if modes["crash-on-prompt"] {
		srvOpts.OnExecute = func(id string) {
			if marker := os.Getenv("FAKECOMFY_CRASH_MARKER"); marker != "" {
				if _, err := os.Stat(marker); err == nil {
					return
				}
				os.WriteFile(marker, nil, 0o644)
			}
			logf("got prompt")
			logf("!!! fake crash while executing prompt %s (FAKECOMFY_MODE=crash-on-prompt)", id)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	fake, err := comfytest.New(srvOpts)
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer fake.Close()

	addr := net.JoinHostPort(opts.listen, strconv.Itoa(opts.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		logf("OSError: [Errno 98] error while attempting to bind on address ('%s', %d): address already in use", opts.listen, opts.port)
		return 1
	}
	rec.ListeningAt = time.Now().UnixNano()
	writeRecord(rec)
	logf("Starting server\n")
	logf("To see the GUI go to: http://%s", addr)
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		logf("server: %v", err)
		return 1
	}
	return 0
}

func version() string {
	if v := os.Getenv("FAKECOMFY_VERSION"); v != "" {
		return v
	}
	return comfytest.Version064
}

func printImports(cwd string) {
	failed := os.Getenv("FAKECOMFY_IMPORT_FAILED")
	var names []string
	for _, n := range strings.Split(failed, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	for _, n := range names {
		path := filepath.Join(cwd, "custom_nodes", n)
		logf("Traceback (most recent call last):")
		logf("  File \"%s/nodes.py\", line 2131, in load_custom_node", cwd)
		logf("    module_spec.loader.exec_module(module)")
		logf("ModuleNotFoundError: No module named 'missing_dep_%s'", strings.ToLower(n))
		logf("")
		logf("Cannot import %s module for custom nodes: No module named 'missing_dep_%s'", path, strings.ToLower(n))
	}
	logf("")
	logf("Import times for custom nodes:")
	logf("   0.0 seconds: %s", filepath.Join(cwd, "custom_nodes", "websocket_image_save.py"))
	for _, n := range names {
		logf("   0.0 seconds (IMPORT FAILED): %s", filepath.Join(cwd, "custom_nodes", n))
	}
	logf("")
}

func writeRecord(rec *Record) {
	path := os.Getenv("FAKECOMFY_RECORD")
	if path == "" {
		return
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, path)
	}
}
