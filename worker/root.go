package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/buildinfo"
	"github.com/runpod-comfy/worker/internal/logging"
	"github.com/runpod-comfy/worker/internal/signals"
	"github.com/runpod-comfy/worker/pkg/runpod"
	"github.com/runpod-comfy/worker/pkg/spec"
	"github.com/runpod-comfy/worker/pkg/version"
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

	versions *version.Manager

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
		a.log, _ = logging.New(stderr, logging.Options{Format: getenv("COMFY_LOG_FORMAT")})
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
	// A signal decides the exit code as in a shell (130 for Ctrl+C), except
	// that a worker told to stop (SIGTERM) and stopping cleanly exits 0.
	if code, ok := signals.ExitCode(ctx, err); ok {
		if err != nil && !errors.Is(err, context.Canceled) {
			a.exitCode(err) // logs what the command reported
		}
		return code
	}
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
		Version:                    buildinfo.String("worker"),
		SuggestionsMinimumDistance: 2,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for \"worker\"", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += ": did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageErr(errors.New(msg + " (see worker --help)"))
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
	root.SetVersionTemplate("{{.Version}}")
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

func usageErrOrNil(err error) error {
	if err == nil {
		return nil
	}
	return usageErr(err)
}

func (a *app) exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ie *version.InputError
	var sf silentFailure
	if errors.As(err, &sf) {
		if sf.usage {
			return exitUsage
		}
		return exitFailure
	}
	code := exitFailure
	switch {
	case errors.As(err, &ue), errors.As(err, &ie), !a.ran, spec.IsInvalid(err):
		code = exitUsage
	}
	if a.log.GetLevel() == zerolog.Disabled {
		a.log, _ = logging.New(a.stderr, logging.Options{Format: firstNonEmpty(a.logFormat, a.cfg.LogFormat), Secrets: a.cfg.secrets()})
	}
	a.log.Error().Msg(err.Error())
	return code
}

// exactArgs wants n arguments and, when they are wrong, says which ones by
// the names the command's usage line gives them (<id>, <src> <dst>).
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		var names []string
		for _, w := range strings.Fields(cmd.Use)[1:] {
			if strings.HasPrefix(w, "<") {
				names = append(names, w)
			}
		}
		for len(names) < n {
			names = append(names, fmt.Sprintf("<arg%d>", len(names)+1))
		}
		switch {
		case n == 0:
			return usageErr(fmt.Errorf("%s takes no arguments, got %q (see %s --help)", cmd.CommandPath(), args, cmd.CommandPath()))
		case len(args) < n:
			return usageErr(fmt.Errorf("%s needs %s (usage: %s)", cmd.CommandPath(), strings.Join(names[len(args):], " "), cmd.UseLine()))
		}
		return usageErr(fmt.Errorf("%s takes %s, got %d arguments: %q (usage: %s)", cmd.CommandPath(), strings.Join(names, " "), len(args), args, cmd.UseLine()))
	}
}

// manager opens the version pipeline with the process's configuration,
// adjusted by a command's flags. It is made on demand, after flags are
// parsed and the logger is set up.
func (a *app) manager(f *realizeFlags) *version.Manager {
	if f == nil && a.versions != nil {
		return a.versions
	}
	m := version.Open(a.versionConfig(f))
	if f == nil {
		a.versions = m
	}
	return m
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
