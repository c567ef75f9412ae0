package pyenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLogicalLines(t *testing.T) {
	in := "# header\nfoo>=1  # why\n\nbar \\\n  [extra]==2\r\nurl#frag\n  -r other.txt\nlast"
	want := []string{"foo>=1", "bar   [extra]==2", "url#frag", "-r other.txt", "last"}
	if got := logicalLines(in); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestReqName(t *testing.T) {
	cases := []struct{ line, name, marker string }{
		{"torch", "torch", ""},
		{"Torch_Vision>=0.19", "torch-vision", ""},
		{"torch[cuda]>=2.5 ; sys_platform == 'linux'", "torch", "sys_platform == 'linux'"},
		{"torch==2.4.0+cu121", "torch", ""},
		{"torch @ https://download.pytorch.org/whl/torch-2.5.0-cp311-linux_x86_64.whl", "torch", ""},
		{"torch @ https://x/y.whl ; python_version>'3'", "torch", "python_version>'3'"},
		{"https://download.pytorch.org/whl/cu121/torch-2.5.0%2Bcu121-cp311-cp311-linux_x86_64.whl", "torch", ""},
		{"./wheels/torchaudio-2.4.0-py3-none-any.whl", "torchaudio", ""},
		{"git+https://github.com/org/repo.git@v1#egg=torch", "torch", ""},
		{"git+https://github.com/org/repo.git@v1", "", ""},
		{"./local/pkg", "", ""},
		{"--extra-index-url https://download.pytorch.org/whl/cu121", "", ""},
		{"-e git+https://x#egg=torch", "", ""},
		{"; python_version > '3'", "", "python_version > '3'"},
	}
	for _, c := range cases {
		name, marker := reqName(c.line)
		if name != c.name || marker != c.marker {
			t.Errorf("reqName(%q) = %q, %q; want %q, %q", c.line, name, marker, c.name, c.marker)
		}
	}
}

func TestNeutralise(t *testing.T) {
	keep := map[string]string{"torch": "2.4.0", "torchvision": "0.19.0"}
	cases := []struct {
		line, bare string
		ok         bool
	}{
		{"torch>=2.5", "torch", true},
		{"torch", "", false}, // already satisfied by the base as written
		{"TORCH", "", false},
		{"torchvision==0.20 ; platform_system=='Linux'", "torchvision ; platform_system=='Linux'", true},
		{"torchsde>=0.2", "", false},
		{"numpy<2", "", false},
		{"torch @ https://x/torch-2.5.0-py3-none-any.whl", "torch", true},
	}
	for _, c := range cases {
		bare, _, ok := neutralise(c.line, keep)
		if ok != c.ok || bare != c.bare {
			t.Errorf("neutralise(%q) = %q, %v; want %q, %v", c.line, bare, ok, c.bare, c.ok)
		}
	}
}

func TestReqWalkerRewritesOnlyWhatItMust(t *testing.T) {
	src := t.TempDir()
	clean := writeFile(t, src, "clean/requirements.txt", "numpy\n-r extra.txt\n")
	writeFile(t, src, "clean/extra.txt", "pillow\n")
	top := writeFile(t, src, "node/requirements.txt", "--extra-index-url https://download.pytorch.org/whl/cu121\n-r sub/base.txt\n-c pins.txt\nopencv-python\n")
	writeFile(t, src, "node/sub/base.txt", "torch>=2.5\n-r ../more.txt\n")
	writeFile(t, src, "node/more.txt", "einops\n")
	writeFile(t, src, "node/pins.txt", "torch==2.5.0\nnumpy<2\n")
	keep := map[string]string{"torch": "2.4.0"}

	n := 0
	w := &reqWalker{keep: keep, source: "clean", workDir: t.TempDir(), written: &n}
	if p, err := w.use(clean, false, 0); err != nil || p != clean {
		t.Errorf("clean file: %q, %v; want it used as is", p, err)
	}

	work := t.TempDir()
	w = &reqWalker{keep: keep, source: "node", workDir: work, written: &n}
	p, err := w.use(top, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, work) {
		t.Fatalf("rewritten top at %s, want under %s", p, work)
	}
	data, _ := os.ReadFile(p)
	lines := logicalLines(string(data))
	if lines[0] != "--extra-index-url https://download.pytorch.org/whl/cu121" || lines[len(lines)-1] != "opencv-python" {
		t.Errorf("other lines not kept: %q", lines)
	}
	var base, pins string
	for _, l := range lines {
		target, isC, ok := include(l)
		if !ok {
			continue
		}
		if !filepath.IsAbs(target) || !strings.HasPrefix(target, work) {
			t.Errorf("include %q not made absolute to a rewritten copy", l)
		}
		if isC {
			pins = target
		} else {
			base = target
		}
	}
	b, _ := os.ReadFile(base)
	bl := logicalLines(string(b))
	if !reflect.DeepEqual(bl, []string{"torch", "-r " + filepath.Join(src, "node/more.txt")}) {
		t.Errorf("rewritten include: %q", bl)
	}
	c, _ := os.ReadFile(pins)
	if !reflect.DeepEqual(logicalLines(string(c)), []string{"numpy<2"}) {
		t.Errorf("rewritten constraints: %q", c)
	}
	if len(w.notes) != 2 {
		t.Errorf("notes %v", w.notes)
	}

	// A dry run writes nothing and says what would be rewritten.
	dry := &reqWalker{keep: keep, source: "node", written: &n}
	if p, err := dry.use(top, false, 0); err != nil || p != "<rewritten "+top+">" {
		t.Errorf("dry run: %q, %v", p, err)
	}

	// A cycle is an error, not a hang.
	loop := writeFile(t, src, "loop/a.txt", "-r a.txt\ntorch>=3\n")
	if _, err := (&reqWalker{keep: keep, source: "loop", written: &n}).use(loop, false, 0); err == nil || !strings.Contains(err.Error(), "deep") {
		t.Errorf("cycle: %v", err)
	}
}

func TestHashReqFile(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	fa := writeFile(t, a, "requirements.txt", "-r inc.txt\nfoo\n")
	fb := writeFile(t, b, "requirements.txt", "-r inc.txt\nfoo\n")
	writeFile(t, a, "inc.txt", "bar\n")
	writeFile(t, b, "inc.txt", "bar\n")
	ha, _ := hashReqFile(fa, 0)
	hb, _ := hashReqFile(fb, 0)
	if ha != hb {
		t.Error("same content in another directory hashes differently")
	}
	writeFile(t, b, "inc.txt", "bar==2\n")
	if hb2, _ := hashReqFile(fb, 0); hb2 == hb {
		t.Error("an edit to an included file does not change the hash")
	}
	if _, err := hashReqFile(filepath.Join(a, "missing.txt"), 0); err == nil {
		t.Error("missing file hashed")
	}
}

// FuzzRequirementLines: whatever a node's requirements.txt holds, parsing
// it must not panic, and a neutralised line must name the kept package.
func FuzzRequirementLines(f *testing.F) {
	for _, s := range []string{"torch>=2.5", ";", "torch @ ", "-r", "\\", "#egg=torch", "x.whl", "torch[", "  \\\n\\"} {
		f.Add(s)
	}
	keep := map[string]string{"torch": "2.4.0"}
	f.Fuzz(func(t *testing.T, data string) {
		for _, line := range logicalLines(data) {
			include(line)
			if bare, _, ok := neutralise(line, keep); ok && !strings.HasPrefix(bare, "torch") {
				t.Errorf("%q neutralised to %q", line, bare)
			}
		}
	})
}
