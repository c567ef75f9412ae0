package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/runpod-comfy/worker/pkg/endpoint"
)

func (a *app) callCmd() *cobra.Command {
	var endpointID, input, outDir, baseURL string
	var sync bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "call --endpoint ID",
		Short: "Send a job to a deployed RunPod endpoint and save the files it returns",
		Long: `Send a job (test_input.json: {"input": {...}}) to a deployed endpoint, follow its
status, print the final status as JSON on stdout and write the returned files
(base64 decoded, URLs downloaded, checksums verified) into --out-dir.
The API key comes from RUNPOD_API_KEY.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := a.getenv("RUNPOD_API_KEY")
			if key == "" {
				return usageErr(errors.New("RUNPOD_API_KEY is not set: create an API key in the RunPod console"))
			}
			if endpointID == "" {
				return usageErr(errors.New("--endpoint is required"))
			}
			doc, err := os.ReadFile(input)
			if err != nil {
				return usageErr(fmt.Errorf("--input: %w", err))
			}
			c, err := endpoint.New(endpoint.Config{APIKey: key, EndpointID: endpointID, BaseURL: baseURL, Logger: a.log})
			if err != nil {
				return usageErr(err)
			}
			defer c.Close()
			inv, err := c.Invoke(cmd.Context(), doc, endpoint.CallOptions{
				Sync: sync, Timeout: timeout,
				Progress: func(u endpoint.Update) {
					a.log.Info().Str("job_id", u.JobID).Str("status", u.Status).RawJSON("progress", progressJSON(u.Progress)).Msg("job progress")
				},
			}, outDir)
			if inv != nil && inv.Result != nil {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				enc.Encode(inv.Result)
				for _, f := range inv.Files {
					a.log.Info().Str("file", f).Msg("output written")
				}
			}
			var ie *endpoint.InputError
			if errors.As(err, &ie) {
				return usageErr(err)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&endpointID, "endpoint", "", "the endpoint id (required)")
	fl.StringVar(&input, "input", "test_input.json", "the request: {\"input\": {...}}")
	fl.StringVar(&outDir, "out-dir", "", "write the returned files here")
	fl.BoolVar(&sync, "sync", false, "use /runsync (falls back to polling when the job outlasts its wait)")
	fl.DurationVar(&timeout, "timeout", 0, "cancel the job after this long (e.g. 10m; 0: no limit)")
	fl.StringVar(&baseURL, "api-url", "", "endpoint API base URL (default https://api.runpod.ai/v2)")
	fl.MarkHidden("api-url")
	return cmd
}

func progressJSON(v json.RawMessage) []byte {
	if len(v) == 0 {
		return []byte("null")
	}
	return v
}
