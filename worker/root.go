package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/logging"
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/runpod"
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
	getenv         func(string) string
	cfg            config
	log            zerolog.Logger
	// logSink is the logger's output, lent to a progress display while
	// one is on the terminal.
	logSink *logging.Sink

	prepared preparedCache

	logLevel, logFormat string
	verbose             bool
	// ran is set once a command's own code starts; errors before that are
	// usage errors (bad flags, wrong argument count).
	ran bool
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, log: zerolog.Nop()}
	cfg, err := loadConfig(getenv)
	if err != nil {
		a.log, _ = logging.New(stderr, logging.Options{})
		a.log.Error().Msg(err.Error())
		return exitUsage
	}
	a.cfg = cfg
	root := a.rootCmd()
	root.SetArgs(extraArgsCompat(args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err = root.ExecuteContext(ctx)
	return a.exitCode(err)
}

func (a *app) rootCmd() *cobra.Command {
	var sf serveFlags
	root := &cobra.Command{
		Use:   "worker",
		Short: "Run ComfyUI workflows on pinned, reproducible ComfyUI versions",
		Long: `worker manages pinned ComfyUI versions (versions/<id>.json), realizes them onto
disk from a shared cache, and runs them as a RunPod serverless worker.

Without a subcommand it behaves like a worker built on RunPod's SDK: the job
loop when RUNPOD_WEBHOOK_GET_JOB is set, the local API with --rp_serve_api,
else one job from --test_input or ./test_input.json.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr(fmt.Errorf("unknown command %q for \"worker\"", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd, sf)
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level, err := a.level(cmd.Name() == "worker", sf.logLevel)
			if err != nil {
				return usageErr(err)
			}
			a.logSink = logging.NewSink(a.stderr)
			log, err := logging.New(a.logSink, logging.Options{Level: level, Format: firstNonEmpty(a.logFormat, a.cfg.LogFormat), Secrets: a.cfg.secrets()})
			if err != nil {
				return usageErr(err)
			}
			a.log = log
			a.ran = true
			return nil
		},
	}
	sf.register(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.cfg.VersionsDir, "versions-dir", a.cfg.VersionsDir, "directory of version specs (env COMFY_VERSIONS_DIR)")
	pf.StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn, error (env COMFY_LOG_LEVEL)")
	pf.StringVar(&a.logFormat, "log-format", "", "log format: console or json; default console on a terminal (env COMFY_LOG_FORMAT)")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "debug logging")
	root.AddCommand(a.createCmd(), a.validateCmd(), a.resolveCmd(), a.listCmd(), a.cloneCmd(), a.deleteCmd(), a.gcCmd(), a.realizeCmd(), a.runUICmd(), a.runHandlerCmd(), a.callCmd())
	return root
}

// level picks the log level: -v, --log-level, then for the worker itself
// the SDK's --rp_log_level, COMFY_LOG_LEVEL, then the SDK's
// RUNPOD_LOG_LEVEL (or RUNPOD_DEBUG_LEVEL); info when none is set. The
// SDK's names (NOTSET, TRACE, DEBUG, INFO, WARN, ERROR) are accepted.
func (a *app) level(serving bool, rpFlag string) (string, error) {
	switch {
	case a.verbose:
		return "debug", nil
	case a.logLevel != "":
		return a.logLevel, nil
	case serving && rpFlag != "":
		return sdkLevel("--rp_log_level", rpFlag)
	case a.cfg.LogLevel != "":
		return a.cfg.LogLevel, nil
	}
	if serving {
		for _, k := range []string{"RUNPOD_LOG_LEVEL", "RUNPOD_DEBUG_LEVEL"} {
			if v := a.getenv(k); v != "" {
				return sdkLevel(k, v)
			}
		}
	}
	return "", nil
}

func sdkLevel(name, v string) (string, error) {
	l, err := runpod.Config{LogLevel: v}.ZerologLevel()
	if err != nil {
		return "", fmt.Errorf("%s=%q: want one of NOTSET, TRACE, DEBUG, INFO, WARN, ERROR", name, v)
	}
	return l.String(), nil
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
	var sf silentFailure
	if errors.As(err, &sf) {
		if sf.usage {
			return exitUsage
		}
		return exitFailure
	}
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

// specDirs are searched in order: the versions directory (baked into the
// image as ./versions), then the network volume's versions/.
func (a *app) specDirs() []string {
	dirs := []string{a.cfg.VersionsDir}
	for _, d := range filepath.SplitList(a.getenv("COMFY_EXTRA_VERSIONS_DIRS")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	vol := firstNonEmpty(a.cfg.Cache.Volume, cache.DefaultVolume)
	return append(dirs, filepath.Join(vol, "versions"))
}

func (a *app) resolver() lock.RefResolver {
	// With the git cache, an abbreviated commit that is no ref tip can be
	// expanded from the repository's history, which realize reuses.
	return gitsrc.NewClient(gitsrc.Options{Rewrites: a.cfg.GitRewrites, Logger: a.log, CacheDir: cache.Layout{Root: a.cacheRoot()}.Git()})
}

// loadSpec finds and decodes a spec, logging its warnings.
func (a *app) loadSpec(id string) (*spec.Spec, error) {
	s, err := spec.Load(a.specDirs(), id)
	if err != nil {
		return nil, err
	}
	if err := checkSources(s); err != nil {
		return nil, err
	}
	a.logWarnings(s.File, s.Warnings)
	return s, nil
}

// checkSources parses every model source as a download would, so that a
// source realize cannot use (an hf:// URL without a file, a civitai://
// reference that is not a number) makes the spec invalid up front, before
// a realize has exported trees and built a venv. Placeholders copied from
// the original tool's docs ("hf://...") stay loadable, with the warning the
// spec already carries, as the original's users expect.
func checkSources(s *spec.Spec) error {
	for _, m := range s.Models {
		for _, src := range m.Sources {
			var se *models.SourceError
			if _, err := models.ParseSource(src); err != nil && !(errors.As(err, &se) && se.Placeholder) {
				return &spec.Error{File: s.File, Path: "models", Msg: fmt.Sprintf("model %s: source %q: %v", m.Name, models.RedactString(src), err)}
			}
		}
	}
	return nil
}

func (a *app) logWarnings(file string, ws []spec.Warning) {
	for _, w := range ws {
		a.log.Warn().Str("file", file).Str("path", w.Path).Msg(w.Msg)
	}
}

// lockFor returns the lock of s, resolving and writing it when the spec
// changed or update is asked; an unchanged spec is answered from disk.
func (a *app) lockFor(ctx context.Context, s *spec.Spec, offline, update bool) (*lock.Lock, lock.Stats, error) {
	return a.resolveLock(ctx, s, offline, update, true)
}

// resolveLock is lockFor; with save false a changed lock is kept in memory
// only (realize --dry-run writes nothing).
func (a *app) resolveLock(ctx context.Context, s *spec.Spec, offline, update, save bool) (*lock.Lock, lock.Stats, error) {
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
	if !st.Reused && save {
		l.SourceSpec = absPath(s.File)
		if err := lock.Write(path, l); err != nil {
			return nil, st, err
		}
	}
	a.log.Debug().Str("lock", path).Bool("reused", st.Reused).Int("remote", st.Remote).Msg("lock ready")
	return l, st, nil
}

// extraArgsCompat accepts the original tool's `run-ui ID --extra-args --
// ARGS...` (everything after --extra-args goes to ComfyUI) by turning it
// into the standard `-- ARGS...`.
func extraArgsCompat(args []string) []string {
	for i, a := range args {
		if a == "--" {
			return args
		}
		if a == "--extra-args" {
			rest := args[i+1:]
			if len(rest) > 0 && rest[0] == "--" {
				rest = rest[1:]
			}
			return append(append(append([]string{}, args[:i]...), "--"), rest...)
		}
	}
	return args
}
