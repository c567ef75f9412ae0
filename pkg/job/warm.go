package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/pkg/comfy"
)

// ensure returns a running ComfyUI for build: the warm one when it serves
// the same build and is alive, else a fresh one (stopping the old). The
// warm ComfyUI owns release from here on.
func (h *Handler) ensure(ctx context.Context, b *Build, j *jobRun, release func()) (w *warm, err error) {
	defer func() {
		if w == nil || w.build != b {
			release() // the warm one holds its own copy, or none started
		}
	}()
	if w := h.warm; w != nil {
		alive := true
		select {
		case <-w.sup.Done():
			alive = false
		default:
		}
		if alive && w.build.Digest == b.Digest && w.build.Dir == b.Dir {
			return w, nil
		}
		reason := "version changed"
		if !alive {
			reason = "ComfyUI exited"
		}
		j.log.Info().Str("from", w.build.VersionID).Str("to", b.VersionID).Str("reason", reason).Msg("restarting ComfyUI")
		if err := h.stopWarm(ctx); err != nil && !errors.Is(err, comfy.ErrStopped) {
			j.log.Warn().Err(err).Msg("stopping the previous ComfyUI")
		}
	}
	j.progress(map[string]any{"stage": "start", "version_id": b.VersionID}, true)
	cc := h.cfg.Comfy
	cc.Python, cc.Dir, cc.Env = b.Python, b.Dir, b.Env
	cc.ExtraArgs = append(append([]string{}, b.ComfyArgs...), h.cfg.Comfy.ExtraArgs...)
	cc.ScratchDir = filepath.Join(h.cfg.Scratch, "comfy")
	// A fresh scratch per process: leftovers of a crashed run must not
	// leak into the next job's outputs.
	os.RemoveAll(cc.ScratchDir)
	if cc.Logger.GetLevel() == zerolog.Disabled {
		cc.Logger = h.cfg.Logger
	}
	sup, err := comfy.NewSupervisor(cc)
	if err != nil {
		return nil, err
	}
	base, err := sup.Start(ctx)
	if err != nil {
		return nil, err
	}
	clientCfg := h.cfg.ClientTemplate
	clientCfg.BaseURL, clientCfg.Process = base, sup
	if clientCfg.Logger.GetLevel() == zerolog.Disabled {
		clientCfg.Logger = h.cfg.Logger
	}
	client, err := comfy.NewClient(clientCfg)
	if err != nil {
		sup.Stop(ctx)
		return nil, fmt.Errorf("ComfyUI client: %w", err)
	}
	h.warm = &warm{build: b, sup: sup, client: client, release: release}
	return h.warm, nil
}

// cleanComfyFiles removes what the job left in ComfyUI's folders: its
// uploaded inputs and its outputs (already downloaded), so a long-lived
// worker's scratch does not grow.
func (h *Handler) cleanComfyFiles(w *warm, res *comfy.Result, log zerolog.Logger) {
	in, out, temp, _ := w.sup.Dirs()
	for _, uploaded := range res.Inputs {
		os.Remove(filepath.Join(in, uploaded))
	}
	for _, o := range res.Outputs {
		root := out
		switch o.Type {
		case "temp":
			root = filepath.Join(temp, "temp")
		case "input":
			continue // not ours to delete
		}
		p := filepath.Join(root, o.Subfolder, o.Filename)
		if rel, err := filepath.Rel(root, p); err != nil || rel == ".." || filepath.IsAbs(rel) || len(rel) > 2 && rel[:3] == "../" {
			continue
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			log.Debug().Err(err).Str("file", p).Msg("cleanup")
		}
	}
}
