package comfy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSupervisorCommandLine(t *testing.T) {
	busy := func(t *testing.T) int {
		// A port free for this test: taken and released.
		p, err := freePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name        string
		databaseURL bool
		gpu         bool
		env         map[string]string
		extra       []string
		fixedPort   bool
		check       func(t *testing.T, argv []string, f fakeInstall)
	}{
		{
			name: "cpu worker with database", databaseURL: true,
			check: func(t *testing.T, argv []string, f fakeInstall) {
				db, _ := argValue(argv, "--database-url")
				want := "sqlite:///" + filepath.Join(f.scratch, "user", "comfyui.db")
				if db != want || !strings.HasPrefix(db, "sqlite:////") {
					t.Errorf("--database-url = %q, want %q", db, want)
				}
				if !slices.Contains(argv, "--cpu") {
					t.Errorf("--cpu missing without a GPU: %q", argv)
				}
			},
		},
		{
			name: "old ComfyUI has no --database-url",
			check: func(t *testing.T, argv []string, f fakeInstall) {
				if _, ok := argValue(argv, "--database-url"); ok {
					t.Errorf("--database-url passed to a version without it: %q", argv)
				}
			},
		},
		{
			name: "GPU visible", gpu: true,
			check: func(t *testing.T, argv []string, f fakeInstall) {
				if slices.Contains(argv, "--cpu") {
					t.Errorf("--cpu with a GPU: %q", argv)
				}
			},
		},
		{
			name: "GPU hidden by the spec env", gpu: true, env: map[string]string{"CUDA_VISIBLE_DEVICES": ""},
			check: func(t *testing.T, argv []string, f fakeInstall) {
				if !slices.Contains(argv, "--cpu") {
					t.Errorf("--cpu missing with CUDA_VISIBLE_DEVICES empty: %q", argv)
				}
			},
		},
		{
			name: "device mode chosen by passthrough args", extra: []string{"--lowvram"},
			check: func(t *testing.T, argv []string, f fakeInstall) {
				if slices.Contains(argv, "--cpu") || !slices.Contains(argv, "--lowvram") {
					t.Errorf("want --lowvram and no --cpu: %q", argv)
				}
			},
		},
		{
			name: "passthrough port wins", fixedPort: true, extra: []string{"--preview-method", "auto"},
			check: func(t *testing.T, argv []string, f fakeInstall) {
				if v, _ := argValue(argv, "--preview-method"); v != "auto" {
					t.Errorf("passthrough args lost: %q", argv)
				}
				n := 0
				for _, a := range argv {
					if a == "--port" {
						n++
					}
				}
				if n != 1 {
					t.Errorf("--port given %d times: %q", n, argv)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeInstall(t, tt.databaseURL)
			env := map[string]string{"TEST_SPEC_ENV": "from-spec"}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg := f.config(env)
			cfg.GPU = func() bool { return tt.gpu }
			cfg.ExtraArgs = tt.extra
			port := 0
			if tt.fixedPort {
				port = busy(t)
				cfg.ExtraArgs = append([]string{"--port", strconv.Itoa(port)}, cfg.ExtraArgs...)
			}
			sup, url := f.start(t, cfg)
			rec := f.readRecord(t)
			argv := rec.Argv[1:]
			if argv[0] != "main.py" {
				t.Fatalf("argv = %q, want main.py first", argv)
			}
			if v, _ := argValue(argv, "--listen"); v != "127.0.0.1" {
				t.Errorf("--listen = %q", v)
			}
			p, _ := argValue(argv, "--port")
			if !strings.HasSuffix(url, ":"+p) || (port != 0 && p != strconv.Itoa(port)) {
				t.Errorf("url %s, --port %s (want %d)", url, p, port)
			}
			for flag, dir := range map[string]string{
				"--input-directory": "input", "--output-directory": "output",
				"--temp-directory": "temp", "--user-directory": "user",
			} {
				if v, _ := argValue(argv, flag); v != filepath.Join(f.scratch, dir) {
					t.Errorf("%s = %q", flag, v)
				}
				if st, err := os.Stat(filepath.Join(f.scratch, dir)); err != nil || !st.IsDir() {
					t.Errorf("scratch %s not created", dir)
				}
			}
			if !slices.Contains(argv, "--disable-auto-launch") {
				t.Errorf("--disable-auto-launch missing: %q", argv)
			}
			if rec.Env["TEST_SPEC_ENV"] != "from-spec" || rec.Env["PYTHONUNBUFFERED"] != "1" {
				t.Errorf("child env = %v", rec.Env)
			}
			tt.check(t, argv, f)

			resp, err := http.Get(url + "/system_stats")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("system_stats: %v %v", resp, err)
			}
			resp.Body.Close()
			if sup.BaseURL() != url {
				t.Errorf("BaseURL = %q, want %q", sup.BaseURL(), url)
			}
			if again, err := sup.Start(t.Context()); err != nil || again != url {
				t.Errorf("second Start = %q, %v; want the running one", again, err)
			}
			if err := sup.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(sup.Err(), ErrStopped) {
				t.Errorf("Err after Stop = %v", sup.Err())
			}
			if !waitDead(rec.PID, 2*time.Second) {
				t.Errorf("pid %d alive after Stop", rec.PID)
			}
			logs := f.logs.String()
			if !strings.Contains(logs, `"component":"comfyui"`) || !strings.Contains(logs, "To see the GUI go to") {
				t.Errorf("ComfyUI output not in the worker log, tagged:\n%s", logs)
			}
		})
	}
}

func TestSupervisorDetectsReadinessWithin50ms(t *testing.T) {
	f := newFakeInstall(t, false)
	for i := range 3 {
		cfg := f.config(map[string]string{"FAKECOMFY_START_DELAY": "200ms"})
		sup, _ := f.start(t, cfg)
		ready := time.Now()
		listening := time.Unix(0, f.readRecord(t).ListeningAt)
		if lag := ready.Sub(listening); lag > 50*time.Millisecond || lag < 0 {
			t.Errorf("run %d: Start returned %s after the port was bound, want < 50ms", i, lag)
		}
		sup.Stop(t.Context())
	}
}

func TestSupervisorExitDuringStartFailsFast(t *testing.T) {
	f := newFakeInstall(t, false)
	cfg := f.config(map[string]string{
		"FAKECOMFY_MODE":          "exit-at-start",
		"FAKECOMFY_EXIT_CODE":     "3",
		"FAKECOMFY_IMPORT_FAILED": "ComfyUI-Broken,was-node-suite",
	})
	cfg.StartTimeout = time.Minute
	sup, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err = sup.Start(t.Context())
	took := time.Since(begin)
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *StartError", err)
	}
	if took > 5*time.Second {
		t.Errorf("start failure took %s; it must not wait for the timeout", took)
	}
	if se.Reason != "exited" || se.ExitCode != 3 {
		t.Errorf("reason %q code %d, want exited/3", se.Reason, se.ExitCode)
	}
	if !slices.ContainsFunc(se.LogTail, func(l string) bool { return strings.Contains(l, "RuntimeError: fake start-up failure") }) {
		t.Errorf("log tail lacks the error: %q", se.LogTail)
	}
	var names []string
	for _, f := range se.ImportFailures {
		names = append(names, f.Name)
		if !strings.Contains(f.Error, "No module named") {
			t.Errorf("import failure %s without cause: %+v", f.Name, f)
		}
	}
	if !slices.Equal(names, []string{"ComfyUI-Broken", "was-node-suite"}) {
		t.Errorf("import failures = %q", names)
	}
	msg := err.Error()
	for _, want := range []string{"exit code 3", "ComfyUI-Broken, was-node-suite", "fake start-up failure"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message lacks %q:\n%s", want, msg)
		}
	}
}

func TestSupervisorReportsImportFailuresOfARunningComfyUI(t *testing.T) {
	f := newFakeInstall(t, false)
	sup, _ := f.start(t, f.config(map[string]string{"FAKECOMFY_IMPORT_FAILED": "ComfyUI-Impact-Pack"}))
	got := sup.ImportFailures()
	if len(got) != 1 || got[0].Name != "ComfyUI-Impact-Pack" || got[0].Path != filepath.Join(f.dir, "custom_nodes", "ComfyUI-Impact-Pack") ||
		got[0].Error != "No module named 'missing_dep_comfyui-impact-pack'" {
		t.Errorf("ImportFailures = %+v", got)
	}
}

func TestSupervisorStartTimeoutKillsTheProcess(t *testing.T) {
	f := newFakeInstall(t, false)
	cfg := f.config(map[string]string{"FAKECOMFY_MODE": "hang-at-start,spawn-child"})
	cfg.StartTimeout = 500 * time.Millisecond
	cfg.StopGrace = 500 * time.Millisecond
	sup, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sup.Start(t.Context())
	var se *StartError
	if !errors.As(err, &se) || se.Reason != "timeout" {
		t.Fatalf("err = %v, want a timeout *StartError", err)
	}
	if !strings.Contains(strings.Join(se.LogTail, "\n"), "hangs") {
		t.Errorf("log tail = %q", se.LogTail)
	}
	rec := f.readRecord(t)
	for _, pid := range []int{rec.PID, rec.ChildPID} {
		if !waitDead(pid, 2*time.Second) {
			t.Errorf("pid %d survived a failed start", pid)
		}
	}
}

func TestSupervisorStartCancelled(t *testing.T) {
	f := newFakeInstall(t, false)
	sup, err := NewSupervisor(f.config(map[string]string{"FAKECOMFY_MODE": "hang-at-start"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = sup.Start(ctx)
	var se *StartError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &se) || se.Reason != "stopped" {
		t.Fatalf("err = %v, want the context error and a stopped *StartError", err)
	}
	if !waitDead(f.readRecord(t).PID, 2*time.Second) {
		t.Error("process survived a cancelled start")
	}
}

func TestSupervisorStopEscalatesToSIGKILL(t *testing.T) {
	f := newFakeInstall(t, false)
	cfg := f.config(map[string]string{"FAKECOMFY_MODE": "ignore-sigterm"})
	cfg.StopGrace = 300 * time.Millisecond
	sup, _ := f.start(t, cfg)
	pid := sup.PID()
	begin := time.Now()
	if err := sup.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("Stop took %s, want just over the 300ms grace", took)
	}
	if !waitDead(pid, time.Second) {
		t.Errorf("pid %d survived SIGKILL", pid)
	}
}

func TestSupervisorLeavesNoOrphans(t *testing.T) {
	for _, how := range []string{"stop", "crash"} {
		t.Run(how, func(t *testing.T) {
			f := newFakeInstall(t, false)
			env := map[string]string{"FAKECOMFY_MODE": "spawn-child"}
			if how == "crash" {
				env["FAKECOMFY_MODE"] += ",crash-on-prompt"
			}
			sup, url := f.start(t, f.config(env))
			rec := f.readRecord(t)
			if !alive(rec.ChildPID) {
				t.Fatalf("fake did not spawn its child: %+v", rec)
			}
			if how == "stop" {
				if err := sup.Stop(t.Context()); err != nil {
					t.Fatal(err)
				}
			} else {
				c := newTestClient(t, url, sup)
				if _, err := c.Run(t.Context(), mustWorkflow(t, imageWorkflow), RunOptions{}); err == nil {
					t.Fatal("Run succeeded on a crashing ComfyUI")
				}
				<-sup.Done()
			}
			if !waitDead(rec.ChildPID, 2*time.Second) {
				t.Errorf("child %d of ComfyUI outlived it (%s)", rec.ChildPID, how)
			}
		})
	}
}

func TestSupervisorCrashFailsTheJobAtOnceAndRestartsClean(t *testing.T) {
	f := newFakeInstall(t, false)
	marker := filepath.Join(t.TempDir(), "crashed")
	sup, url := f.start(t, f.config(map[string]string{"FAKECOMFY_MODE": "crash-on-prompt", "FAKECOMFY_CRASH_MARKER": marker}))
	c := newTestClient(t, url, sup)
	begin := time.Now()
	_, err := c.Run(t.Context(), mustWorkflow(t, slowWorkflow(5, 100)), RunOptions{Timeout: time.Minute})
	took := time.Since(begin)
	var ce *CrashError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *CrashError", err)
	}
	if took > 3*time.Second {
		t.Errorf("crash reported after %s, want at once", took)
	}
	if ce.Signal != "killed" || !strings.Contains(strings.Join(ce.LogTail, "\n"), "fake crash while executing prompt") {
		t.Errorf("crash error = %+v", ce)
	}
	if !strings.Contains(err.Error(), "fake crash while executing prompt") {
		t.Errorf("error message lacks the log tail: %v", err)
	}

	url2, err := sup.Start(t.Context())
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if sup.Err() != nil {
		t.Errorf("Err after restart = %v", sup.Err())
	}
	select {
	case <-sup.Done():
		t.Error("Done closed after restart")
	default:
	}
	if tail := strings.Join(sup.LogTail(100), "\n"); strings.Contains(tail, "fake crash") {
		t.Errorf("log tail of the new process holds the old crash:\n%s", tail)
	}
	c2 := newTestClient(t, url2, sup)
	res, err := c2.Run(t.Context(), mustWorkflow(t, imageWorkflow), RunOptions{OutputDir: t.TempDir()})
	if err != nil || len(res.Outputs) != 1 {
		t.Fatalf("run after restart: %+v, %v", res, err)
	}
}

func TestSupervisorPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := newFakeInstall(t, false)
	cfg := f.config(nil)
	cfg.Port = ln.Addr().(*net.TCPAddr).Port
	sup, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sup.Start(t.Context())
	var se *StartError
	if !errors.As(err, &se) || !portInUse(se.LogTail) {
		t.Fatalf("err = %v, want a start error about the port", err)
	}
}

func TestSupervisorConfigErrors(t *testing.T) {
	f := newFakeInstall(t, false)
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no python", func(c *Config) { c.Python = "" }, "Python is required"},
		{"no dir", func(c *Config) { c.Dir = "" }, "Dir is required"},
		{"no scratch", func(c *Config) { c.ScratchDir = "" }, "ScratchDir is required"},
		{"no main.py", func(c *Config) { c.Dir = t.TempDir() }, "no main.py"},
		{"bad port arg", func(c *Config) { c.ExtraArgs = []string{"--port", "x"} }, "not a port number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config(nil)
			tt.mod(&cfg)
			sup, err := NewSupervisor(cfg)
			if err == nil {
				_, err = sup.Start(t.Context())
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSupervisorStopDuringStart(t *testing.T) {
	f := newFakeInstall(t, false)
	sup, err := NewSupervisor(f.config(map[string]string{"FAKECOMFY_START_DELAY": "5s"}))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := sup.Start(t.Context())
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for sup.PID() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := sup.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		var se *StartError
		if !errors.As(err, &se) || se.Reason != "stopped" {
			t.Errorf("Start = %v, want a stopped *StartError", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Start did not return after Stop")
	}
	if !errors.Is(sup.Err(), ErrStopped) {
		t.Errorf("Err = %v", sup.Err())
	}
}
