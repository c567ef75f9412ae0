package pyenv

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureVenvLifecycle(t *testing.T) {
	t.Parallel()
	wheels := standardWheels(t)
	in, _ := newTestInstaller(t, Config{WheelsDir: wheels})
	ctx := context.Background()
	build := filepath.Join(t.TempDir(), "comfy-v1")

	v, err := in.EnsureVenv(ctx, build)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Created || v.ID == "" || v.Python != filepath.Join(build, ".venv", "bin", "python") {
		t.Fatalf("first venv %+v", v)
	}
	cfg, _ := os.ReadFile(filepath.Join(v.Dir, "pyvenv.cfg"))
	if !strings.Contains(string(cfg), "include-system-site-packages = false") {
		t.Errorf("pyvenv.cfg:\n%s", cfg)
	}
	if err := in.Install(ctx, v.Dir, Plan{Packages: []string{"bar"}}); err != nil {
		t.Fatal(err)
	}

	again, err := in.EnsureVenv(ctx, build)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.ID != v.ID {
		t.Fatalf("a healthy venv was recreated: %+v", again)
	}

	// Each way a venv can go wrong, checked on the real venv and undone.
	rec := filepath.Join(v.Dir, recordName)
	site, _ := filepath.Glob(filepath.Join(v.Dir, "lib", "python*", "site-packages"))
	if len(site) != 1 {
		t.Fatalf("site-packages: %v", site)
	}
	flipped, _ := newTestInstaller(t, Config{SystemSitePackages: true})
	cases := []struct {
		name   string
		in     *Installer
		break_ func() (undo func())
		reason string
	}{
		{"healthy", in, func() func() { return func() {} }, ""},
		{"unfinished", in, func() func() { return move(t, rec, rec+".away") }, "unfinished"},
		{"other interpreter", in, func() func() {
			data, _ := os.ReadFile(rec)
			var r record
			json.Unmarshal(data, &r)
			r.Executable = "/opt/other/bin/python3"
			changed, _ := json.Marshal(r)
			os.WriteFile(rec, changed, 0o644)
			return func() { os.WriteFile(rec, data, 0o644) }
		}, "made from /opt/other/bin/python3"},
		{"system site packages changed", flipped, func() func() { return func() {} }, "system_site_packages changed to true"},
		{"python does not run", in, func() func() {
			p := filepath.Join(v.Dir, "bin", "python3")
			target, _ := os.Readlink(p)
			os.Remove(p)
			os.Symlink("/nonexistent/python3", p)
			return func() { os.Remove(p); os.Symlink(target, p) }
		}, "bin/python does not run"},
		{"pip missing", in, func() func() {
			return move(t, filepath.Join(site[0], "pip"), filepath.Join(site[0], "pip.away"))
		}, "pip is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			undo := c.break_()
			defer undo()
			interp, err := c.in.Interpreter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, reason := c.in.check(ctx, v.Dir, interp)
			if c.reason == "" && reason != "" || !strings.Contains(reason, c.reason) {
				t.Errorf("reason %q, want %q", reason, c.reason)
			}
		})
	}

	t.Run("broken venv is replaced by an empty one", func(t *testing.T) {
		os.Remove(filepath.Join(v.Dir, "bin", "python3"))
		fresh, err := in.EnsureVenv(ctx, build)
		if err != nil {
			t.Fatal(err)
		}
		if !fresh.Created || fresh.ID == v.ID {
			t.Fatalf("not recreated: %+v", fresh)
		}
		if got := installed(t, fresh.Python); got["bar"] != "" {
			t.Errorf("old packages survived: %v", got)
		}
		p1, _ := in.PlanDigest(Plan{Packages: []string{"bar"}}, v)
		p2, _ := in.PlanDigest(Plan{Packages: []string{"bar"}}, fresh)
		if p1 == p2 {
			t.Error("a recreated venv keeps the old plan digest, so the caller would skip installing")
		}
	})

	t.Run("refuses to delete what is not a venv", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "b")
		keep := writeFile(t, other, ".venv/precious.txt", "user data")
		_, err := in.EnsureVenv(ctx, other)
		if err == nil || !strings.Contains(err.Error(), "not a virtualenv") {
			t.Fatalf("want a refusal, got %v", err)
		}
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("user file removed: %v", err)
		}
	})
}

func move(t *testing.T, from, to string) func() {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
	return func() { os.Rename(to, from) }
}

func TestInterpreterErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := writeFile(t, dir, "python3.8", `#!/bin/sh
echo '{"executable": "/x/python3.8", "version": "3.8.18", "major": 3, "minor": 8, "tag": "cpython-38", "in_venv": false, "has_pip": true}'
`)
	os.Chmod(old, 0o755)
	broken := writeFile(t, dir, "python-broken", "#!/bin/sh\necho 'Fatal Python error' >&2\nexit 1\n")
	os.Chmod(broken, 0o755)
	cases := []struct{ python, want string }{
		{"python-that-does-not-exist", `"python-that-does-not-exist" not found`},
		{old, "3.9 or newer"},
		{broken, "does not run"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.python), func(t *testing.T) {
			in := New(Config{Python: c.python})
			_, err := in.EnsureVenv(context.Background(), t.TempDir())
			var te *ToolError
			if !errorsAs(err, &te) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want a ToolError with %q", err, c.want)
			}
		})
	}
}
