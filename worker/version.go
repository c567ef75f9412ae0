package main

import (
	"fmt"
	"runtime/debug"
)

// buildVersion is set at link time (-ldflags "-X main.buildVersion=v1.2.3")
// by release builds; otherwise the module's version, if any, is shown.
var buildVersion string

// versionString says what was built: version, commit and Go version.
func versionString() string {
	v, commit, modified, goVersion := buildVersion, "unknown", false, "unknown"
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
	return fmt.Sprintf("worker %s\ncommit: %s\ngo: %s\n", v, commit, goVersion)
}
