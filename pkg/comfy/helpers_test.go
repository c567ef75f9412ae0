package comfy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/syncbuf"
)

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// fakeInstall is a ComfyUI "build" whose python runs fakecomfy.
type fakeInstall struct {
	python, dir, scratch, record string
	logs                         *syncBuffer
}

func newFakeInstall(t *testing.T, databaseURL bool) fakeInstall {
	t.Helper()
	root := t.TempDir()
	f := fakeInstall{
		python:  filepath.Join(root, "python"),
		dir:     filepath.Join(root, "ComfyUI"),
		scratch: filepath.Join(root, "scratch"),
		record:  filepath.Join(root, "record.json"),
		logs:    &syncBuffer{},
	}
	mustWrite(t, filepath.Join(f.dir, "main.py"), "# fake ComfyUI entry point\n")
	cliArgs := "parser.add_argument(\"--port\", type=int, default=8188)\n"
	if databaseURL {
		cliArgs += "parser.add_argument(\"--database-url\", type=str, default=f\"sqlite:///{database_default_path}\")\n"
	}
	mustWrite(t, filepath.Join(f.dir, "comfy", "cli_args.py"), cliArgs)
	mustWrite(t, f.python, "#!/bin/sh\nexec '"+fakeComfyBin+"' \"$@\"\n")
	if err := os.Chmod(f.python, 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// config is a fast-failing configuration; env adds FAKECOMFY_* settings.
func (f fakeInstall) config(env map[string]string) Config {
	e := map[string]string{"FAKECOMFY_RECORD": f.record}
	for k, v := range env {
		e[k] = v
	}
	return Config{
		Python: f.python, Dir: f.dir, ScratchDir: f.scratch, Env: e,
		GPU:          func() bool { return false },
		StartTimeout: 30 * time.Second,
		StopGrace:    3 * time.Second,
		Logger:       zerolog.New(f.logs),
	}
}

func (f fakeInstall) start(t *testing.T, cfg Config) (*Supervisor, string) {
	t.Helper()
	sup, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Stop(t.Context()) })
	url, err := sup.Start(t.Context())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return sup, url
}

type fakeRecord struct {
	Argv        []string          `json:"argv"`
	PID         int               `json:"pid"`
	ChildPID    int               `json:"child_pid"`
	Env         map[string]string `json:"env"`
	ListeningAt int64             `json:"listening_at_unix_nano"`
	Dirs        map[string]string `json:"dirs"`
}

func (f fakeInstall) readRecord(t *testing.T) fakeRecord {
	t.Helper()
	b, err := os.ReadFile(f.record)
	if err != nil {
		t.Fatal(err)
	}
	var r fakeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Field 3, after "pid (comm) ", is the state.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// waitDead waits up to d for pid to be gone.
func waitDead(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// argValue returns the value after flag in argv ("" when absent).
func argValue(argv []string, flag string) (string, bool) {
	for i, a := range argv {
		if a == flag {
			if i+1 < len(argv) {
				return argv[i+1], true
			}
			return "", true
		}
	}
	return "", false
}
