package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var (
	readmeRowRE  = regexp.MustCompile("(?m)^\\| `worker([^`]*)` \\|")
	readmeFlagRE = regexp.MustCompile(`--[a-z][a-z0-9_-]*`)
)

// TestReadmeCommandTable keeps README's command table and --help in step:
// every command has a row, every flag a row names exists, and every flag
// of a command is named in its row (realize's shared flags by "[realize
// flags]"), so a new flag cannot be left out of the table.
func TestReadmeCommandTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	root := (&app{getenv: func(string) string { return "" }}).rootCmd()
	var shared realizeFlags
	sharedCmd := &cobra.Command{Use: "x"}
	shared.register(sharedCmd)
	rows := map[*cobra.Command]string{}
	for _, m := range readmeRowRE.FindAllStringSubmatch(string(b), -1) {
		words := strings.Fields(m[1])
		cmd := root
		if len(words) > 0 && !strings.HasPrefix(words[0], "-") && !strings.HasPrefix(words[0], "[") {
			if cmd, _, err = root.Find(words[:1]); err != nil || cmd == root {
				t.Errorf("README row `worker%s`: no command %q", m[1], words[0])
				continue
			}
		}
		rows[cmd] = m[1]
	}
	for _, cmd := range append([]*cobra.Command{root}, root.Commands()...) {
		if !cmd.IsAvailableCommand() && cmd != root {
			continue
		}
		row, ok := rows[cmd]
		if !ok {
			t.Errorf("README's command table has no row for `%s`", cmd.CommandPath())
			continue
		}
		named := map[string]bool{}
		for _, f := range readmeFlagRE.FindAllString(row, -1) {
			named[f[2:]] = true
			if cmd.Flags().Lookup(f[2:]) == nil {
				t.Errorf("README row for `%s` names %s, which it does not take", cmd.CommandPath(), f)
			}
		}
		var missing []string
		cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || named[f.Name] || f.Name == "help" || f.Name == "version" {
				return
			}
			if strings.Contains(row, "[realize flags]") && sharedCmd.Flags().Lookup(f.Name) != nil {
				return
			}
			// Accepted only so that SDK command lines keep working.
			if f.Name == "rp_api_concurrency" || f.Name == "rp_debugger" {
				return
			}
			missing = append(missing, "--"+f.Name)
		})
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("README row for `%s` leaves out %s", cmd.CommandPath(), strings.Join(missing, ", "))
		}
	}
}
