package comfy

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitNetArgs(t *testing.T) {
	tests := []struct {
		in      []string
		listen  string
		port    int
		rest    []string
		wantErr bool
	}{
		{in: []string{"--preview-method", "auto"}, rest: []string{"--preview-method", "auto"}},
		{in: []string{"--listen"}, listen: "0.0.0.0,::"},
		{in: []string{"--listen", "--cpu"}, listen: "0.0.0.0,::", rest: []string{"--cpu"}},
		{in: []string{"--listen", "10.0.0.5", "--port", "9000", "--lowvram"}, listen: "10.0.0.5", port: 9000, rest: []string{"--lowvram"}},
		{in: []string{"--listen=::", "--port=81"}, listen: "::", port: 81},
		{in: []string{"--port"}, wantErr: true},
		{in: []string{"--port", "70000"}, wantErr: true},
	}
	for _, tt := range tests {
		na, err := splitNetArgs(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if err != nil {
			continue
		}
		listen, port := "", 0
		if na.listen != nil {
			listen = *na.listen
		}
		if na.port != nil {
			port = *na.port
		}
		if listen != tt.listen || port != tt.port || !slices.Equal(na.rest, tt.rest) {
			t.Errorf("%q: listen %q port %d rest %q", tt.in, listen, port, na.rest)
		}
	}
}

func TestProbeHost(t *testing.T) {
	for in, want := range map[string]string{
		"": "127.0.0.1", "127.0.0.1": "127.0.0.1", "0.0.0.0": "127.0.0.1", "0.0.0.0,::": "127.0.0.1",
		"::": "::1", "10.1.2.3": "10.1.2.3", "[::1]": "::1", "localhost": "localhost",
	} {
		if got := probeHost(in); got != want {
			t.Errorf("probeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuildEnv(t *testing.T) {
	env := buildEnv([]string{"PATH=/bin", "HOME=/root", "PATH=/usr/bin"}, map[string]string{"HOME": "/scratch", "HF_HUB_OFFLINE": "1"})
	want := []string{"PATH=/usr/bin", "HOME=/scratch", "HF_HUB_OFFLINE=1", "PYTHONUNBUFFERED=1"}
	if !slices.Equal(env, want) {
		t.Errorf("env = %q, want %q", env, want)
	}
	if got := buildEnv([]string{"PYTHONUNBUFFERED=0"}, nil); !slices.Equal(got, []string{"PYTHONUNBUFFERED=0"}) {
		t.Errorf("an explicit PYTHONUNBUFFERED was overridden: %q", got)
	}
	for v, hidden := range map[string]bool{"": true, "-1": true, "none": true, "NoDevFiles": true, "0": false, "0,1": false} {
		if gpuHidden([]string{"CUDA_VISIBLE_DEVICES=" + v}) != hidden {
			t.Errorf("CUDA_VISIBLE_DEVICES=%q hidden != %v", v, hidden)
		}
	}
	if gpuHidden([]string{"PATH=/bin"}) {
		t.Error("unset CUDA_VISIBLE_DEVICES read as hidden")
	}
}

func TestSupportsDatabaseURL(t *testing.T) {
	dir := t.TempDir()
	if SupportsDatabaseURL(dir) {
		t.Error("a dir without cli_args.py supports --database-url")
	}
	mustWrite(t, dir+"/comfy/cli_args.py", "parser.add_argument(\"--port\")\n")
	if SupportsDatabaseURL(dir) {
		t.Error("old cli_args.py read as supporting --database-url")
	}
	mustWrite(t, dir+"/comfy/cli_args.py", strings.Repeat("#\n", 10)+"parser.add_argument(\"--database-url\", type=str)\n")
	if !SupportsDatabaseURL(dir) {
		t.Error("new cli_args.py not recognised")
	}
}
