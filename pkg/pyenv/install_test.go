package pyenv

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/pyenv/pyenvtest"
)

// TestInstall runs the install behaviours against one real venv, in order:
// each step relies on what the previous one left installed.
func TestInstall(t *testing.T) {
	t.Parallel()
	wheels := standardWheels(t)
	var mu sync.Mutex
	var events []progress.Event
	in, logs := newTestInstaller(t, Config{WheelsDir: wheels, PipCacheDir: filepath.Join(t.TempDir(), "pip-cache"),
		Progress: func(e progress.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	ctx := context.Background()
	build := t.TempDir()
	v, err := in.EnsureVenv(ctx, build)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	core := writeFile(t, src, "ComfyUI/requirements.txt", "bar\n")
	nodeA := writeFile(t, src, "a/requirements.txt", "# node A\nfoo<2  # needs the 1.x API\n")
	nodeB := writeFile(t, src, "b/requirements.txt", "baz\n")
	nodeC := writeFile(t, src, "c/requirements.txt", "foo>=2\n")

	t.Run("conflict fails with pip's explanation", func(t *testing.T) {
		err := in.Install(ctx, v.Dir, Plan{CoreRequirements: core, Nodes: []NodeRequirements{{"a", nodeA}, {"c", nodeC}}})
		var ie *InstallError
		if !errors.As(err, &ie) {
			t.Fatalf("want *InstallError, got %v", err)
		}
		if !ie.Conflict() || ie.ExitCode != 1 || ie.Tool != "pip" {
			t.Errorf("conflict=%v exit=%d tool=%s", ie.Conflict(), ie.ExitCode, ie.Tool)
		}
		for _, want := range []string{"foo<2", "foo>=2", "conflicting dependencies", "install_requirements off"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		// One resolution fails as a whole: nothing of the plan is installed.
		if got := installed(t, v.Python); got["bar"] != "" || got["foo"] != "" {
			t.Errorf("a failed resolution installed %v", got)
		}
	})

	t.Run("one resolution for core and all nodes", func(t *testing.T) {
		mu.Lock()
		events = nil
		mu.Unlock()
		plan := Plan{CoreRequirements: core, Nodes: []NodeRequirements{{"a", nodeA}, {"b", nodeB}}}
		if err := in.Install(ctx, v.Dir, plan); err != nil {
			t.Fatal(err)
		}
		got := freezeMap(t, in, v.Dir)
		want := map[string]string{"bar": "1.0", "foo": "1.5", "baz": "1.0"}
		for name, ver := range want {
			if got[name] != ver {
				t.Errorf("%s = %q, want %q (freeze %v)", name, got[name], ver, got)
			}
		}
		if out := py(t, v.Python, "import foo, baz; print(foo.__version__, baz.__version__)"); out != "1.5 1.0" {
			t.Errorf("imports give %q", out)
		}
		if n := strings.Count(logs.String(), "installing python requirements"); n != 2 {
			t.Errorf("%d pip runs logged so far, want 2 (one per Install)", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(events) < 2 || !events[len(events)-1].Finished || events[len(events)-1].Message != "installed" {
			t.Errorf("progress events: %+v", events)
		}
	})

	t.Run("options pass through in order", func(t *testing.T) {
		extra := pyenvtest.Wheels(t, t.TempDir(), pyenvtest.Wheel{Name: "only-extra", Version: "3.0"})
		// --no-deps lets qux in without its missing dependency; the
		// --find-links value in the next entry must stay next to its flag.
		plan := Plan{Packages: []string{"--no-deps", "qux", "--find-links", extra, "only-extra"}}
		if err := in.Install(ctx, v.Dir, plan); err != nil {
			t.Fatal(err)
		}
		got := installed(t, v.Python)
		if got["qux"] != "1.0" || got["only-extra"] != "3.0" || got["quux"] != "" {
			t.Errorf("freeze %v", got)
		}
		// Without --no-deps the same package fails: the option did matter.
		var ie *InstallError
		err := in.Install(ctx, v.Dir, Plan{Packages: []string{"--force-reinstall", "qux"}})
		if !errors.As(err, &ie) || !ie.Missing() || !strings.Contains(ie.Hint, wheels) {
			t.Errorf("want a missing-wheel error naming the wheels dir, got %v", err)
		}
	})

	t.Run("cancel kills pip", func(t *testing.T) {
		started := make(chan struct{}, 1)
		gone := make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case started <- struct{}{}:
			default:
			}
			<-r.Context().Done() // until pip's connection closes
			select {
			case gone <- struct{}{}:
			default:
			}
		}))
		defer srv.Close()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- in.Install(cctx, v.Dir, Plan{Packages: []string{"--find-links", srv.URL + "/links/", "not-installed-yet"}})
		}()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("install ended before reaching the server: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatal("pip never asked the links server")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("want context.Canceled, got %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Install did not return after cancel")
		}
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			t.Fatal("pip's connection stayed open: pip still running")
		}
	})

	t.Run("temp files removed", func(t *testing.T) {
		left, _ := filepath.Glob(filepath.Join(in.cfg.TempDir, "pyenv-install-*"))
		if len(left) != 0 {
			t.Errorf("left behind: %v", left)
		}
		if !strings.Contains(logs.String(), `"--cache-dir","`+in.cfg.PipCacheDir+`"`) {
			t.Errorf("pip not given the cache dir:\n%s", logs)
		}
	})
}
