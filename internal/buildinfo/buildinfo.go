// Package buildinfo says what a binary was built from: its version, the
// commit and the Go version, for a --version flag.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Version is set at link time by release builds
// (-ldflags "-X github.com/runpod-comfy/worker/internal/buildinfo.Version=v1.2.3");
// otherwise the module's version, if the build knows one, is shown.
var Version string

// String is name's version, commit and Go version, one per line.
func String(name string) string {
	v, commit, modified, goVersion := Version, "unknown", false, "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("%s %s\ncommit: %s\ngo: %s\n", name, v, commit, goVersion)
}
