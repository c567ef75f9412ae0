package pyenv

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestSplitPackages(t *testing.T) {
	p := Plan{Packages: []string{"--force-reinstall", "Pillow", "--extra-index-url", "https://x/simple", "-ihttps://y", "--pre", "onnx==1.16", " ", "--no-binary=:all:", "sageattention"}}
	if got, want := p.Requirements(), []string{"Pillow", "onnx==1.16", "sageattention"}; !reflect.DeepEqual(got, want) {
		t.Errorf("requirements %q, want %q", got, want)
	}
	if got, want := p.Options(), []string{"--force-reinstall", "--extra-index-url", "https://x/simple", "-ihttps://y", "--pre", "--no-binary=:all:"}; !reflect.DeepEqual(got, want) {
		t.Errorf("options %q, want %q", got, want)
	}
}

func TestPlanDigest(t *testing.T) {
	dir := t.TempDir()
	core := writeFile(t, dir, "core.txt", "torch\nnumpy\n")
	node := writeFile(t, dir, "node.txt", "einops\n")
	copyDir := t.TempDir()
	coreCopy := writeFile(t, copyDir, "elsewhere.txt", "torch\nnumpy\n")
	edited := writeFile(t, copyDir, "edited.txt", "torch\nnumpy<2\n")

	in := New(Config{})
	venv := &Venv{ID: "v1", Interpreter: Interpreter{Tag: "cpython-311"}}
	plan := Plan{CoreRequirements: core, Nodes: []NodeRequirements{{"n", node}}, Packages: []string{"--pre", "onnx"}}
	base, err := in.PlanDigest(plan, venv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "sha256:") {
		t.Errorf("digest %q", base)
	}
	cases := []struct {
		name   string
		plan   func(Plan) Plan
		venv   func(Venv) Venv
		cfg    Config
		change bool
	}{
		{"same inputs", nil, nil, Config{}, false},
		{"same content elsewhere", func(p Plan) Plan { p.CoreRequirements = coreCopy; return p }, nil, Config{}, false},
		{"where packages come from", nil, nil, Config{Offline: true, WheelsDir: "/w", PipCacheDir: "/c", UV: UVNever}, false},
		{"core content", func(p Plan) Plan { p.CoreRequirements = edited; return p }, nil, Config{}, true},
		{"node name", func(p Plan) Plan { p.Nodes = []NodeRequirements{{"m", node}}; return p }, nil, Config{}, true},
		{"node dropped", func(p Plan) Plan { p.Nodes = nil; return p }, nil, Config{}, true},
		{"package", func(p Plan) Plan { p.Packages = []string{"--pre", "onnx==1.16"}; return p }, nil, Config{}, true},
		{"option", func(p Plan) Plan { p.Packages = []string{"onnx"}; return p }, nil, Config{}, true},
		{"recreated venv", nil, func(v Venv) Venv { v.ID = "v2"; return v }, Config{}, true},
		{"interpreter ABI", nil, func(v Venv) Venv { v.Interpreter.Tag = "cpython-312"; return v }, Config{}, true},
		{"system site", nil, func(v Venv) Venv { v.SystemSitePackages = true; return v }, Config{}, true},
		{"base torch", nil, func(v Venv) Venv { v.BasePins = []Pin{{"torch", "2.5.0"}}; return v }, Config{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, v := plan, *venv
			if c.plan != nil {
				p = c.plan(p)
			}
			if c.venv != nil {
				v = c.venv(v)
			}
			got, err := New(c.cfg).PlanDigest(p, &v)
			if err != nil {
				t.Fatal(err)
			}
			if (got != base) != c.change {
				t.Errorf("changed=%v, want %v", got != base, c.change)
			}
		})
	}
	if _, err := in.PlanDigest(Plan{Nodes: []NodeRequirements{{"gone", dir + "/missing.txt"}}}, venv); err == nil || !strings.Contains(err.Error(), "node gone") {
		t.Errorf("missing file: %v", err)
	}
}

func TestToolChoice(t *testing.T) {
	found := func(string) (string, error) { return "/opt/bin/uv", nil }
	missing := func(string) (string, error) { return "", errors.New("not found") }
	cases := []struct {
		name       string
		mode       UVMode
		look       func(string) (string, error)
		systemSite bool
		want       string
		err        bool
	}{
		{"auto with uv", UVAuto, found, false, "uv", false},
		{"auto without uv", UVAuto, missing, false, "pip", false},
		{"auto, system site", UVAuto, found, true, "pip", false},
		{"never", UVNever, found, false, "pip", false},
		{"always", UVAlways, found, true, "uv", false},
		{"always, missing", UVAlways, missing, false, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tool, err := New(Config{UV: c.mode, LookPath: c.look}).tool(c.systemSite)
			if (err != nil) != c.err || tool.Name != c.want || (err == nil && tool.Reason == "") {
				t.Errorf("got %+v, %v", tool, err)
			}
			var te *ToolError
			if c.err && !errors.As(err, &te) {
				t.Errorf("want a *ToolError, got %T", err)
			}
		})
	}
}

func TestPrepareArgs(t *testing.T) {
	dir := t.TempDir()
	core := writeFile(t, dir, "core.txt", "torch>=2\nnumpy\n")
	plan := Plan{CoreRequirements: core, Packages: []string{"--extra-index-url", "https://user:s3cret@idx/simple", "onnx"}}
	cases := []struct {
		name string
		cfg  Config
		tool Tool
		pins []Pin
		want []string
	}{
		{"pip online", Config{}, Tool{Name: "pip"}, nil,
			[]string{"PY", "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-r", core, "--extra-index-url", "https://user:s3cret@idx/simple", "onnx"}},
		{"pip wheels + cache", Config{WheelsDir: "/w", PipCacheDir: "/c"}, Tool{Name: "pip"}, nil,
			[]string{"PY", "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--no-index", "--find-links", "/w", "--cache-dir", "/c", "-r", core, "--extra-index-url", "https://user:s3cret@idx/simple", "onnx"}},
		{"uv offline", Config{Offline: true, PipCacheDir: "/c"}, Tool{Name: "uv", Path: "/bin/uv"}, nil,
			[]string{"/bin/uv", "pip", "install", "--python", "PY", "--no-index", "--cache-dir", "/c/uv", "-r", core, "--extra-index-url", "https://user:s3cret@idx/simple", "onnx"}},
		{"pip pinned", Config{}, Tool{Name: "pip"}, []Pin{{"torch", "2.4.0"}},
			[]string{"PY", "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-c", "WORK/base-constraints.txt", "-r", "WORK/req-001-core.txt", "--extra-index-url", "https://user:s3cret@idx/simple", "onnx"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			inv, err := New(c.cfg).prepare(plan, c.tool, "PY", c.pins, work)
			if err != nil {
				t.Fatal(err)
			}
			got := append([]string{inv.program}, inv.args...)
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], work, "WORK")
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			if c.pins != nil {
				data, _ := os.ReadFile(work + "/base-constraints.txt")
				if string(data) != "torch==2.4.0\n" {
					t.Errorf("constraints %q", data)
				}
			}
			if r := strings.Join(redactArgs(got), " "); strings.Contains(r, "s3cret") {
				t.Errorf("redacted args keep the secret: %s", r)
			}
		})
	}
}

func TestInstallErrorMessage(t *testing.T) {
	ie := &InstallError{Tool: "pip", Op: "install", ExitCode: 1, Err: errors.New("exit status 1"), Tail: []string{
		"Looking in links: /w",
		"ERROR: Cannot install foo<2 and foo>=2 because these package versions have conflicting dependencies.",
		"The conflict is caused by:",
		"    The user requested foo<2",
		"ERROR: ResolutionImpossible: for help visit https://pip.pypa.io",
	}, Hint: "pin compatible versions"}
	msg := ie.Error()
	first := strings.SplitN(msg, "\n", 2)[0]
	if !strings.HasPrefix(first, "pip install failed (exit status 1): ERROR: Cannot install foo<2 and foo>=2") || !strings.HasSuffix(first, "; pin compatible versions") {
		t.Errorf("first line %q", first)
	}
	if !strings.Contains(msg, "The user requested foo<2") || !ie.Conflict() || ie.Missing() {
		t.Errorf("message %q", msg)
	}
	noErr := &InstallError{Tool: "uv", Op: "install", Tail: []string{"a", "last words", ""}}
	if noErr.Summary() != "last words" {
		t.Errorf("summary %q", noErr.Summary())
	}
}
