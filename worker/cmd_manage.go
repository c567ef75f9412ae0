package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/pkg/version"
)

func (a *app) listCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List version specs with the state of their lock and build",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := a.manager(nil).List()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSPEC\tLOCK\tBUILD\tLOCAL")
			for _, r := range rows {
				valid := "ok"
				if !r.Valid {
					valid = "invalid"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, valid, r.Lock, r.BuildState, r.Local)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) cloneCmd() *cobra.Command {
	var force bool
	var output string
	cmd := &cobra.Command{
		Use:   "clone <src> <dst>",
		Short: "Copy a version spec under a new id",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst := args[0], args[1]
			output, err := a.manager(nil).Clone(src, dst, output, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "[OK] cloned %s to %s: %s\n", src, dst, output)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing spec")
	cmd.Flags().StringVar(&output, "output", "", "where to write the new spec (default <versions-dir>/<dst>.json)")
	return cmd
}

func (a *app) deleteCmd() *cobra.Command {
	var target string
	var removeSpec bool
	cmd := &cobra.Command{
		Use:   "delete <id>",
		Short: "Remove a version's build and lock (and with --remove-spec its spec)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := a.manager(&realizeFlags{target: target})
			removed, err := m.Delete(cmd.Context(), args[0], version.DeleteOptions{Explicit: target != "", RemoveSpec: removeSpec})
			if err != nil {
				return err
			}
			for _, r := range removed {
				state := "removed"
				if !r.Removed {
					state = "absent"
				}
				fmt.Fprintf(a.stdout, "%s: %s (%s)\n", r.What, r.Path, state)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "the build directory to remove (default <builds root>/comfy-<id>)")
	cmd.Flags().BoolVar(&removeSpec, "remove-spec", false, "also remove versions/<id>.json")
	return cmd
}
