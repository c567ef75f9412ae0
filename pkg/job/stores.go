package job

import (
	"context"
	"fmt"
	"os"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/pkg/output"
)

// store is the Deliverer of an output mode; nil for base64 or a store the
// worker does not have.
func (h *Handler) store(mode string) Deliverer {
	switch mode {
	case output.ModeGCS:
		return h.cfg.GCS
	case output.ModeS3:
		return h.cfg.S3
	}
	return nil
}

// autoStore is where "auto" sends large outputs: GCS when the worker has
// it (so adding S3 settings to a GCS deployment changes nothing), else S3;
// "" when it has neither.
func (h *Handler) autoStore() string {
	switch {
	case h.cfg.GCS != nil:
		return output.ModeGCS
	case h.cfg.S3 != nil:
		return output.ModeS3
	}
	return ""
}

// notConfigured says what to set for a store the worker lacks.
var notConfigured = map[string]string{
	output.ModeGCS: "GCS delivery is not configured on this worker (set GCS_BUCKET and credentials)",
	output.ModeS3:  "S3 delivery is not configured on this worker (set BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY, or S3_BUCKET and S3 keys)",
}

// checkOutput refuses at the input stage a job whose outputs could not be
// delivered, before its version is realized or its workflow run.
func (h *Handler) checkOutput(in *Input) error {
	mode := in.OutputMode
	if mode == output.ModeAuto {
		mode = h.autoStore()
	}
	if mode == "" || mode == output.ModeBase64 {
		return nil
	}
	d := h.store(mode)
	if d == nil {
		return &InputError{Field: "output_mode", Format: in.ResponseFormat,
			Msg: fmt.Sprintf("%s: %s, or use output_mode base64", mode, notConfigured[mode])}
	}
	if err := d.Check(in); err != nil {
		return &InputError{Field: mode + "_bucket", Format: in.ResponseFormat, Msg: err.Error()}
	}
	return nil
}

// memoryBudget is how many bytes of a job's outputs may be kept in memory
// rather than written to scratch: what a base64 result can carry. Uploads
// stream from disk.
func (h *Handler) memoryBudget(in *Input) int64 {
	raw := h.cfg.Base64Limit / 4 * 3
	switch in.OutputMode {
	case output.ModeBase64:
		return raw
	case output.ModeAuto:
		if h.autoStore() != "" {
			return min(raw, h.cfg.AutoThreshold)
		}
		return raw
	}
	return 0
}

// deliver returns the result entries for files in the job's output mode.
func (h *Handler) deliver(ctx context.Context, jobID string, in *Input, files []output.Local) ([]output.File, string, error) {
	mode := in.OutputMode
	if mode == output.ModeAuto {
		var total int64
		for _, f := range files {
			if f.Data != nil {
				total += int64(len(f.Data))
			} else if st, err := os.Stat(f.Path); err == nil {
				total += st.Size()
			}
		}
		mode = output.ModeBase64
		if total > h.cfg.AutoThreshold && h.autoStore() != "" {
			mode = h.autoStore()
		}
	}
	if mode == output.ModeBase64 {
		out, err := output.Base64(ctx, files, h.cfg.Base64Limit)
		return out, mode, err
	}
	d := h.store(mode)
	if d == nil { // checkOutput refused the job already
		return nil, mode, &Failure{Type: ErrOutput, Message: fmt.Sprintf("output_mode %s: %s, or use output_mode base64", mode, notConfigured[mode]), Details: map[string]any{}}
	}
	out, err := d.Deliver(ctx, jobID, in, files)
	return out, mode, err
}

// Store is an object store outputs are uploaded to: *output.GCS and
// *output.S3.
type Store interface {
	Upload(ctx context.Context, req output.UploadRequest) ([]output.File, error)
	CheckBucket(bucket string) error
}

// GCSDeliverer delivers to s with the job's gcs_bucket and gcs_prefix.
func GCSDeliverer(s Store, log zerolog.Logger) Deliverer {
	return storeDeliverer{s, log, func(in *Input) (string, string) { return in.GCSBucket, in.GCSPrefix }}
}

// S3Deliverer delivers to s with the job's s3_bucket and s3_prefix.
func S3Deliverer(s Store, log zerolog.Logger) Deliverer {
	return storeDeliverer{s, log, func(in *Input) (string, string) { return in.S3Bucket, in.S3Prefix }}
}

type storeDeliverer struct {
	s   Store
	log zerolog.Logger
	// where picks the job's bucket and prefix for this store.
	where func(*Input) (bucket, prefix string)
}

func (d storeDeliverer) Check(in *Input) error {
	bucket, _ := d.where(in)
	return d.s.CheckBucket(bucket)
}

func (d storeDeliverer) Deliver(ctx context.Context, jobID string, in *Input, files []output.Local) ([]output.File, error) {
	bucket, prefix := d.where(in)
	return d.s.Upload(ctx, output.UploadRequest{
		Bucket: bucket, Prefix: prefix, JobID: jobID, Files: files,
		Warn: func(msg string) { d.log.Warn().Str("job_id", jobID).Msg(msg) },
	})
}
