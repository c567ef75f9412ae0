package main

import (
	"context"
	"errors"
	"io"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/logging"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad usage, invalid spec or invalid input
)

// app carries what every command needs: IO streams, configuration and the
// logger, so commands are testable in-process.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	cfg            config
	log            zerolog.Logger

	logLevel, logFormat string
	verbose             bool
	// ran is set once a command's own code starts; errors before that are
	// usage errors (bad flags, wrong argument count).
	ran bool
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, log: zerolog.Nop()}
	cfg, err := loadConfig(getenv)
	if err != nil {
		a.log, _ = logging.New(stderr, logging.Options{})
		a.log.Error().Msg(err.Error())
		return exitUsage
	}
	a.cfg = cfg
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err = root.ExecuteContext(ctx)
	return a.exitCode(err)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "worker",
		Short: "Run ComfyUI workflows on pinned, reproducible ComfyUI versions",
		Long: `worker manages pinned ComfyUI versions (versions/<id>.json), realizes them onto
disk from a shared cache, and runs them as a RunPod serverless worker.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := firstNonEmpty(a.logLevel, a.cfg.LogLevel)
			if a.verbose {
				level = "debug"
			}
			log, err := logging.New(a.stderr, logging.Options{Level: level, Format: firstNonEmpty(a.logFormat, a.cfg.LogFormat), Secrets: a.cfg.secrets()})
			if err != nil {
				return usageErr(err)
			}
			a.log = log
			a.ran = true
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.cfg.VersionsDir, "versions-dir", a.cfg.VersionsDir, "directory of version specs (env COMFY_VERSIONS_DIR)")
	pf.StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn, error (env COMFY_LOG_LEVEL)")
	pf.StringVar(&a.logFormat, "log-format", "", "log format: console or json; default console on a terminal (env COMFY_LOG_FORMAT)")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "debug logging")
	root.AddCommand(a.createCmd(), a.validateCmd(), a.resolveCmd(), a.listCmd(), a.cloneCmd(), a.deleteCmd())
	return root
}

// usageError marks bad invocations (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErr(err error) error { return usageError{err} }

func (a *app) exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	code := exitFailure
	switch {
	case errors.As(err, &ue), !a.ran, spec.IsInvalid(err):
		code = exitUsage
	}
	if a.log.GetLevel() == zerolog.Disabled {
		a.log, _ = logging.New(a.stderr, logging.Options{Secrets: a.cfg.secrets()})
	}
	a.log.Error().Msg(err.Error())
	return code
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageErr(err)
		}
		return nil
	}
}

func (a *app) cacheRoot() string { return a.cfg.Cache.CacheRoot() }

func (a *app) lockPath(id string) string { return lock.Path(a.cacheRoot(), id) }

func (a *app) specDirs() []string { return []string{a.cfg.VersionsDir} }

func (a *app) resolver() lock.RefResolver {
	return gitsrc.NewClient(gitsrc.Options{Rewrites: a.cfg.GitRewrites, Logger: a.log})
}

// loadSpec finds and decodes a spec, logging its warnings.
func (a *app) loadSpec(id string) (*spec.Spec, error) {
	s, err := spec.Load(a.specDirs(), id)
	if err != nil {
		return nil, err
	}
	a.logWarnings(s.File, s.Warnings)
	return s, nil
}

func (a *app) logWarnings(file string, ws []spec.Warning) {
	for _, w := range ws {
		a.log.Warn().Str("file", file).Str("path", w.Path).Msg(w.Msg)
	}
}

// lockFor returns the lock of s, resolving and writing it when the spec
// changed or update is asked; an unchanged spec is answered from disk.
func (a *app) lockFor(ctx context.Context, s *spec.Spec, offline, update bool) (*lock.Lock, lock.Stats, error) {
	path := a.lockPath(s.ID)
	prev, err := lock.Read(path)
	if err != nil && !errors.Is(err, lock.ErrNoLock) {
		a.log.Warn().Err(err).Msg("ignoring unreadable lock")
		prev = nil
	}
	l, st, err := lock.Resolve(ctx, s, prev, a.resolver(), lock.Options{
		Update: update, Offline: offline || a.cfg.Offline, Logger: a.log,
	})
	if err != nil {
		return nil, st, err
	}
	if !st.Reused {
		l.SourceSpec = absPath(s.File)
		if err := lock.Write(path, l); err != nil {
			return nil, st, err
		}
	}
	a.log.Debug().Str("lock", path).Bool("reused", st.Reused).Int("remote", st.Remote).Msg("lock ready")
	return l, st, nil
}
