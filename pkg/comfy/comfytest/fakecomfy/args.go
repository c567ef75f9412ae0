package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type options struct {
	listen                     string
	port                       int
	input, output, temp, user  string
	databaseURL                string
	cpu, logStdout, autoLaunch bool
}

// Flags the fake knows, by arity, after ComfyUI's comfy/cli_args.py. Flags
// with an optional value (--listen, --verbose) are handled separately.
var (
	valueFlags = map[string]bool{
		"--port": true, "--output-directory": true, "--input-directory": true, "--temp-directory": true,
		"--user-directory": true, "--database-url": true, "--extra-model-paths-config": true,
		"--preview-method": true, "--cache-lru": true, "--front-end-root": true, "--front-end-version": true,
		"--base-directory": true, "--max-upload-size": true, "--reserve-vram": true, "--cuda-device": true,
	}
	boolFlags = map[string]bool{
		"--disable-auto-launch": true, "--auto-launch": true, "--cpu": true, "--cache-none": true,
		"--cache-classic": true, "--highvram": true, "--lowvram": true, "--novram": true, "--gpu-only": true,
		"--normalvram": true, "--disable-metadata": true, "--dont-print-server": true, "--log-stdout": true,
		"--disable-all-custom-nodes": true, "--quick-test-for-ci": true, "--disable-smart-memory": true,
		"--fast": true, "--deterministic": true, "--multi-user": true,
	}
	// ComfyUI's --cpu is in a mutually exclusive group with these.
	cpuExclusive = []string{"--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram"}
)

func parseArgs(args []string, cwd string) (*options, error) {
	o := &options{
		listen: "127.0.0.1", port: 8188,
		input: filepath.Join(cwd, "input"), output: filepath.Join(cwd, "output"),
		temp: filepath.Join(cwd, "temp"), user: filepath.Join(cwd, "user"),
	}
	seen := map[string]bool{}
	var unknown []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "--") {
			unknown = append(unknown, a)
			continue
		}
		seen[name] = true
		switch {
		case name == "--listen" || name == "--verbose":
			if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				val, hasVal = args[i+1], true
				i++
			}
			if name == "--listen" {
				o.listen = "0.0.0.0"
				if hasVal {
					o.listen = strings.Split(val, ",")[0]
				}
			}
			continue
		case valueFlags[name]:
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("argument %s: expected one argument", name)
				}
				val = args[i+1]
				i++
			}
		case boolFlags[name]:
			if hasVal {
				return nil, fmt.Errorf("argument %s: ignored explicit argument '%s'", name, val)
			}
		default:
			unknown = append(unknown, a)
			continue
		}
		if err := o.set(name, val, cwd); err != nil {
			return nil, err
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unrecognized arguments: %s", strings.Join(unknown, " "))
	}
	if seen["--cpu"] {
		for _, f := range cpuExclusive {
			if seen[f] {
				return nil, fmt.Errorf("argument %s: not allowed with argument --cpu", f)
			}
		}
	}
	return o, nil
}

func (o *options) set(name, val, cwd string) error {
	switch name {
	case "--port":
		p, err := strconv.Atoi(val)
		if err != nil {
			return fmt.Errorf("argument --port: invalid int value: '%s'", val)
		}
		o.port = p
	case "--output-directory":
		o.output = abs(val)
	case "--input-directory":
		o.input = abs(val)
	case "--temp-directory":
		// ComfyUI puts its temp files in <dir>/temp.
		o.temp = filepath.Join(abs(val), "temp")
	case "--user-directory":
		if st, err := os.Stat(val); err != nil || !st.IsDir() {
			return fmt.Errorf("argument --user-directory: '%s' is not a valid directory.", val)
		}
		o.user = abs(val)
	case "--database-url":
		src, _ := os.ReadFile(filepath.Join(cwd, "comfy", "cli_args.py"))
		if !strings.Contains(string(src), "--database-url") {
			return fmt.Errorf("unrecognized arguments: --database-url %s", val)
		}
		o.databaseURL = val
	case "--cpu":
		o.cpu = true
	case "--log-stdout":
		o.logStdout = true
	case "--auto-launch":
		o.autoLaunch = true
	}
	return nil
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
