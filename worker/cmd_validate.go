package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/units"
	"github.com/runpod-comfy/worker/pkg/version"
)

type resolveFlags struct {
	offline, update bool
}

func (f *resolveFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.offline, "offline", false, "use only the lock; fail if a ref is not pinned there (env COMFY_OFFLINE)")
	cmd.Flags().BoolVar(&f.update, "update", false, "re-resolve every ref to the newest commit")
}

func (f resolveFlags) options() version.LockOptions {
	return version.LockOptions{Offline: f.offline, Update: f.update}
}

func (a *app) validateCmd() *cobra.Command {
	var f resolveFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate <id>",
		Short: "Check a spec, resolve its refs into the lock, and print the plan",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.manager(nil).Validate(cmd.Context(), args[0], f.options())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
			p.WriteText(a.stdout)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}

func (a *app) resolveCmd() *cobra.Command {
	var f resolveFlags
	cmd := &cobra.Command{
		Use:   "resolve <id>",
		Short: "Pin every ref of a spec to a commit in its lock file",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := a.manager(nil)
			s, err := m.LoadArg(args[0])
			if err != nil {
				return err
			}
			_, st, err := m.Lock(cmd.Context(), s, f.options())
			if err != nil {
				return err
			}
			state := "resolved"
			if st.Reused {
				state = "up to date"
			}
			fmt.Fprintf(a.stdout, "version_id: %s\nlock: %s (%s, %s asked remotely)\n", s.ID, m.LockPath(s.ID), state, units.Count(st.Remote, "ref"))
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
