package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/internal/fsutil"
	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/endpoint"
	"github.com/runpod-comfy/worker/pkg/job"
)

func (a *app) runUICmd() *cobra.Command {
	var f realizeFlags
	var host, dataDir string
	var port int
	cmd := &cobra.Command{
		Use:   "run-ui <id> [-- ComfyUI args...]",
		Short: "Realize a version if needed and run ComfyUI's web UI in the foreground",
		Long: `Realize the version if needed, then run ComfyUI on --host:--port (default
0.0.0.0:8188). Arguments after -- go to ComfyUI; the original tool's
spelling "--extra-args -- ..." works too. Ctrl+C stops it (exit code 130).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() == 0 || len(args) == 0 {
				return usageErr(errors.New("run-ui needs a version id"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id, passthrough := args[0], args[1:]
			if dash := cmd.ArgsLenAtDash(); dash > 0 {
				passthrough = args[dash:]
			}
			if err := f.check(); err != nil {
				return err
			}
			build, err := a.manager(&f).Prepare(ctx, id, nil)
			var release func()
			if err == nil { // a local copy, as a worker runs (see docs/operations.md)
				build, release, err = build.Local(ctx)
			}
			if err != nil {
				return err
			}
			defer release()
			if dataDir == "" {
				dataDir = filepath.Join(a.cfg.Cache.Home, "comfy-ui", id)
			}
			sup, err := comfy.NewSupervisor(comfy.Config{
				Python: build.Python, Dir: build.Dir, Listen: host, Port: port, ScratchDir: dataDir,
				Env: build.Env, ExtraArgs: append(append([]string{}, build.ComfyArgs...), passthrough...), Logger: a.log,
			})
			if err != nil {
				return err
			}
			return sup.Foreground(ctx, 30*time.Second, func(url string) {
				fmt.Fprintf(a.stdout, "ComfyUI %s is running at %s (data in %s); Ctrl+C stops it\n", id, url, dataDir)
			})
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&host, "host", "0.0.0.0", "address ComfyUI listens on")
	fl.IntVar(&port, "port", 8188, "port ComfyUI listens on")
	fl.StringVar(&dataDir, "data-dir", "", "input/output/user folders (default ~/comfy-ui/<id>); the build itself stays read-only")
	return cmd
}

func (a *app) runHandlerCmd() *cobra.Command {
	var f realizeFlags
	var workflow, outMode, outFile, outDir, format, gcsBucket, gcsPrefix string
	var images []string
	var timeout secondsFlag
	var rawBase64 bool
	cmd := &cobra.Command{
		Use:   "run-handler <id> --workflow F",
		Short: "Run one workflow headless and print the job result as JSON",
		Long: `Realize the version if needed, start ComfyUI, run the workflow (API format) and
print one JSON result - the serverless job's result - on stdout or into
--out-file. --out-dir also writes each output file. Exit 0 on success, 2
when the spec or the input is invalid, 1 on any other failure (the error is
in the JSON either way).

--raw-base64 writes only the first output's base64, as the original tool's
"--output base64 --out-file result.b64" did.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			wf, err := os.ReadFile(workflow)
			if err != nil {
				return usageErr(fmt.Errorf("--workflow: %w", err))
			}
			req := job.Request{VersionID: args[0], Workflow: wf, OutputMode: outMode, GCSBucket: gcsBucket, GCSPrefix: gcsPrefix,
				ResponseFormat: format, Timeout: time.Duration(timeout).Seconds()}
			for _, spec := range images {
				name, path, ok := strings.Cut(spec, "=")
				if !ok {
					return usageErr(fmt.Errorf("--image %q: want NAME=PATH", spec))
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return usageErr(fmt.Errorf("--image %s: %w", name, err))
				}
				req.AddImage(name, data)
			}
			raw, err := req.JSON()
			if err != nil {
				return usageErr(fmt.Errorf("--workflow %s: %w", workflow, err))
			}
			if err := f.check(); err != nil {
				return err
			}
			h, err := a.jobHandler(a.manager(&f))
			if err != nil {
				return err
			}
			defer h.Close(context.WithoutCancel(ctx))
			out := h.Handle(ctx, "cli-"+fmt.Sprint(time.Now().Unix()), raw, nil)
			doc := map[string]any{"output": out.Output}
			if out.Failure != nil {
				doc = map[string]any{"error": out.Failure.Message}
				if o := out.Failure.Output(); o != nil {
					doc["output"] = o
				}
			}
			body, _ := json.MarshalIndent(doc, "", "  ")
			body = append(body, '\n')
			result, _ := json.Marshal(out.Output)
			if rawBase64 && out.Failure == nil {
				b64, ok := endpoint.FirstBase64(result)
				if !ok {
					return errors.New("--raw-base64: the result has no base64 output (use --output base64)")
				}
				body = []byte(b64)
			}
			if outFile != "" {
				if err := fsutil.WriteFileAtomic(outFile, body, 0o644); err != nil {
					return err
				}
			} else {
				a.stdout.Write(body)
			}
			if outDir != "" && out.Failure == nil {
				w := endpoint.OutputWriter{Logger: a.log}
				if _, err := w.WriteOutputs(ctx, result, outDir); err != nil {
					return err
				}
			}
			if out.Failure != nil {
				// A bad spec or input is the caller's to fix: exit 2, as
				// validate does for the same spec.
				t := out.Failure.Type
				return silentFailure{usage: t == job.ErrInput || t == job.ErrSpec}
			}
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&workflow, "workflow", "", "workflow file in ComfyUI's API format (required)")
	fl.StringArrayVar(&images, "image", nil, "input file NAME=PATH, referenced by NAME in the workflow (repeatable)")
	fl.StringVar(&outMode, "output", "base64", "base64, gcs, s3 or auto")
	fl.StringVar(&outFile, "out-file", "", "write the result here instead of stdout")
	fl.StringVar(&outDir, "out-dir", "", "also write each output file into this directory")
	fl.StringVar(&format, "response-format", "", "default, original or worker-comfyui")
	fl.Var(&timeout, "timeout", "interrupt the prompt after this long, e.g. 5m or 300 (seconds); 0: no limit")
	fl.StringVar(&gcsBucket, "gcs-bucket", "", "bucket for --output gcs (default GCS_BUCKET), as the original tool's flag")
	fl.StringVar(&gcsPrefix, "gcs-prefix", "", "object name prefix for --output gcs (default GCS_PREFIX)")
	fl.BoolVar(&rawBase64, "raw-base64", false, "write only the first output's base64 (the original tool's result.b64)")
	cmd.MarkFlagRequired("workflow")
	return cmd
}
