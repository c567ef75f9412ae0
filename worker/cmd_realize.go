package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/pkg/version"
)

// realizeFlags are shared by realize, run-ui and run-handler.
type realizeFlags struct {
	target, modelsDir, wheelsDir string
	offline, update              bool
	jobs                         int
}

func (f *realizeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "build directory (default $COMFY_HOME, else <builds root>/comfy-<id>)")
	fl.StringVar(&f.modelsDir, "models-dir", "", "shared models directory (default $MODELS_DIR, else <volume>/models)")
	fl.StringVar(&f.wheelsDir, "wheels-dir", "", "install Python packages only from these wheels (pip --no-index --find-links)")
	fl.BoolVar(&f.offline, "offline", false, "use only the lock and the caches; fail clearly on a miss (env COMFY_OFFLINE)")
	fl.BoolVar(&f.update, "update", false, "re-resolve refs before realizing")
	fl.IntVar(&f.jobs, "jobs", 4, "parallel git fetches and model downloads")
}

func (f *realizeFlags) check() error {
	if f.jobs < 1 {
		return usageErr(fmt.Errorf("--jobs must be at least 1"))
	}
	return nil
}

func (a *app) realizeCmd() *cobra.Command {
	var f realizeFlags
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "realize <id>",
		Short: "Build a version on disk from the shared cache (incremental, crash- and concurrency-safe)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := f.check(); err != nil {
				return err
			}
			m := a.manager(&f)
			s, err := m.LoadArg(args[0])
			if err != nil {
				return err
			}
			l, _, err := m.Lock(ctx, s, version.LockOptions{NoSave: dryRun})
			if err != nil {
				return err
			}
			if dryRun {
				p, err := m.Plan(ctx, s, l)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(a.stdout).Encode(p)
				}
				p.WriteText(a.stdout)
				return nil
			}
			start := time.Now()
			res, err := m.Realize(ctx, s, l, nil)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(res)
			}
			state := "realized"
			if res.NoOp {
				state = "already complete"
			}
			fmt.Fprintf(a.stdout, "[OK] %s %s in %s\nCOMFY_HOME: %s\nMODELS_DIR: %s\nlock: %s\n", s.ID, state,
				time.Since(start).Round(time.Millisecond), res.BuildDir, m.ModelsDir(), m.LockPath(s.ID))
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (what is present, what would be fetched, sizes) and change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan or the result as JSON")
	return cmd
}

// stderrFile returns w as a file when it is one (for terminal detection).
func stderrFile(w any) *os.File {
	f, _ := w.(*os.File)
	return f
}
