package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/models/progressui"
	"github.com/runpod-comfy/worker/pkg/output"
	"github.com/runpod-comfy/worker/pkg/progress"
	"github.com/runpod-comfy/worker/pkg/pyenv"
	"github.com/runpod-comfy/worker/pkg/realize"
	"github.com/runpod-comfy/worker/pkg/spec"
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

func (a *app) realizeCmd() *cobra.Command {
	var f realizeFlags
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "realize <id>",
		Short: "Build a version on disk from the shared cache (incremental, crash- and concurrency-safe)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := a.loadSpec(args[0])
			if err != nil {
				return err
			}
			if f.jobs < 1 {
				return usageErr(fmt.Errorf("--jobs must be at least 1"))
			}
			l, _, err := a.resolveLock(ctx, s, f.offline, f.update, !dryRun)
			if err != nil {
				return err
			}
			cfg, done, err := a.realizeConfig(s, l, f, nil)
			if err != nil {
				return err
			}
			defer done()
			if dryRun {
				p, err := realize.DryRun(ctx, cfg, l)
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
			res, err := a.realize(ctx, cfg, l)
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
				time.Since(start).Round(time.Millisecond), res.BuildDir, cfg.ModelsDir, a.lockPath(s.ID))
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (what is present, what would be fetched, sizes) and change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan or the result as JSON")
	return cmd
}

// realizeConfig wires the realize step's components from configuration.
// done stops the progress display.
// realizeConfig wires a realize. Progress goes to the terminal (or log
// lines) and, when also is set, to it as well: git, Python and model
// download events alike.
func (a *app) realizeConfig(s *spec.Spec, l *lock.Lock, f realizeFlags, also progress.Func) (realize.Config, func(), error) {
	root := a.cacheRoot()
	layout := cache.Layout{Root: root}
	offline := f.offline || a.cfg.Offline || l.Options.Offline
	modelsDir := a.modelsDir(f.modelsDir)
	ui := progressui.Auto(stderrFile(a.stderr), a.log, 5*time.Second)
	report := progress.Func(ui.Report)
	if also != nil {
		report = progress.Tee(report, also)
	}
	mc := models.Config{
		Root: root, HFToken: a.cfg.HFToken, CivitaiToken: a.cfg.CivitaiToken, Offline: offline,
		BufferedWrites: a.cfg.BufferedModelWrites, Logger: a.log, Progress: report,
	}
	// gs:// model sources use the same GCS key as outputs when one was
	// pasted into an env value; otherwise the client's default lookup.
	if gc, err := loadGCSConfig(a.getenv); err == nil && gc.Credentials.Value != "" {
		creds, err := output.LoadCredentials(gc.Credentials)
		if err != nil {
			ui.Close()
			return realize.Config{}, nil, err
		}
		mc.GCSOptions = creds.ClientOptions()
	}
	store, err := models.New(mc)
	if err != nil {
		ui.Close()
		return realize.Config{}, nil, err
	}
	lockPath := a.lockPath(s.ID)
	cfg := realize.Config{
		BuildDir:  a.buildDir(s.ID, f.target),
		ModelsDir: modelsDir,
		Jobs:      f.jobs,
		Trees:     a.trees(layout, offline),
		Models:    store,
		Python: pyenv.Config{
			WheelsDir: firstNonEmpty(f.wheelsDir, a.cfg.WheelsDir), Offline: offline, PipCacheDir: layout.Pip(),
		},
		Logger:   a.log,
		Progress: report,
		SaveLock: func(l *lock.Lock) error { return lock.Write(lockPath, l) },
		// A directory the user named is realized in place; the builds
		// root gets immutable builds behind comfy-<id>.
		InPlace: f.target != "" || a.cfg.ComfyHome != "",
	}
	return cfg, ui.Close, nil
}

// realize runs realize.Realize under the shared cache lock, so a gc waits
// for it. A cache it cannot even make the lock in (a read-only volume with
// everything built) is realized without it: no gc can run there either.
func (a *app) realize(ctx context.Context, cfg realize.Config, l *lock.Lock) (*realize.Result, error) {
	unlock, err := cache.Layout{Root: a.cacheRoot()}.LockCache(ctx, false, func() {
		a.log.Info().Msg("waiting for a cache gc to finish")
	})
	switch {
	case err == nil:
		defer unlock()
	case ctx.Err() != nil:
		return nil, err
	default:
		a.log.Debug().Err(err).Msg("no cache lock; realizing without it")
	}
	return realize.Realize(ctx, cfg, l)
}

// modelsDir is the shared models directory: the flag, MODELS_DIR, or the
// volume's.
func (a *app) modelsDir(flag string) string {
	return firstNonEmpty(flag, a.cfg.ModelsDir, a.cfg.Cache.ModelsDir())
}

// stderrFile returns w as a file when it is one (for terminal detection).
func stderrFile(w any) *os.File {
	f, _ := w.(*os.File)
	return f
}
