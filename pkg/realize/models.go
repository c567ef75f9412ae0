package realize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/models"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Where a model lives. A model whose target is in the shared models
// directory ($MODELS_DIR/...) is placed there for everyone (ComfyUI
// searches it first: extra_model_paths.yaml makes it the default), and also
// linked into the build's own models/ folder, for custom nodes that look
// only under ComfyUI's models folder. A model targeted inside the build
// ($COMFY_HOME/...) lives only there. Two versions cannot have different
// files at one shared path: the second one's realize fails and says so.

// sharedPath is where a target goes: under the models directory for
// $MODELS_DIR/..., inside the build for $COMFY_HOME/....
func (r *run) sharedPath(target string) (string, error) {
	t, err := spec.ParseTarget(target)
	if err != nil {
		return "", err
	}
	if t.Root == spec.ComfyRoot {
		return r.path(filepath.FromSlash(t.Rel)), nil
	}
	if r.cfg.ModelsDir == "" {
		return "", errors.New("no models directory: set MODELS_DIR or --models-dir")
	}
	return filepath.Join(r.cfg.ModelsDir, filepath.FromSlash(t.Rel)), nil
}

// linkPath is the file ComfyUI of this build opens for a target: the
// build's own link for $MODELS_DIR/..., the file itself otherwise. The
// marker records its stat data.
func (r *run) linkPath(target string) (string, error) {
	t, err := spec.ParseTarget(target)
	if err != nil {
		return "", err
	}
	if t.Root == spec.ComfyRoot {
		return r.path(filepath.FromSlash(t.Rel)), nil
	}
	return r.path("models", filepath.FromSlash(t.Rel)), nil
}

func isShared(target string) bool {
	t, err := spec.ParseTarget(target)
	return err == nil && t.Root == spec.ModelsRoot
}

// fetchShared is the step beside the trees: it downloads what is missing
// into the content-addressed store (in parallel, each blob once across
// processes) and places the models of the shared models directory.
// Digests learned on first download go into the lock.
func (r *run) fetchShared(ctx context.Context) (string, error) {
	if r.skipModels() {
		return "", nil
	}
	var reqs []models.Request
	var todo []int
	for i, lm := range r.lock.Models {
		if !isShared(lm.TargetPath) {
			continue
		}
		shared, err := r.sharedPath(lm.TargetPath)
		if err != nil {
			return "", fmt.Errorf("model %s: %w", lm.Name, err)
		}
		// Placed before and still in the store: the link step below
		// (after the core, which replaces models/) needs no fetch.
		if placed, ok := r.marker.Models[lm.TargetPath]; ok && placed.matches(lm) &&
			r.cfg.Models != nil && sameFiles(shared, r.cfg.Models.BlobPath(placed.SHA256)) {
			continue
		}
		reqs = append(reqs, request(lm))
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return "", nil
	}
	// A failed model does not keep the others from their place, and is
	// not fetched a second time by the link step.
	blobs, fetchErr := r.fetch(ctx, reqs)
	r.mu.Lock()
	defer r.mu.Unlock()
	downloaded := 0
	var errs []error
	if fetchErr != nil {
		errs = append(errs, fetchErr)
	}
	for k, i := range todo {
		lm, b := r.lock.Models[i], blobs[k]
		if b.Path == "" {
			r.failed[lm.TargetPath] = true
			continue
		}
		shared, _ := r.sharedPath(lm.TargetPath)
		b, err := r.placeShared(ctx, lm, b, shared)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		blobs[k] = b
		r.blobs[lm.TargetPath] = b
		if b.Downloaded {
			downloaded++
		}
	}
	if err := r.learn(todo, blobs); err != nil {
		return "", err
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return fmt.Sprintf("%d placed, %d downloaded", len(todo), downloaded), nil
}

// placeShared puts b at its shared path. A file already there that is not
// b is replaced when it is this version's earlier model at that path, or
// has b's very content (a copy placed by hand or by the original tool: it
// becomes a link, so it is stored once). A file with other content is
// another version's model, or the user's: it is left alone and the step
// fails, since ComfyUI searches the shared directory first and would load
// that file instead of this model.
func (r *run) placeShared(ctx context.Context, lm lock.Model, b models.Blob, shared string) (models.Blob, error) {
	old, err := os.Stat(shared)
	if err == nil && old.Mode().IsRegular() && !sameFile(old, b.Path) {
		prev, ok := r.marker.Models[lm.TargetPath]
		ours := ok && prev.SHA256 != "" && sameFile(old, r.cfg.Models.BlobPath(prev.SHA256))
		if !ours && !sameContent(shared, old, b) {
			return b, &ModelConflictError{Model: lm.Name, Path: shared, Size: old.Size()}
		}
	}
	return r.place(ctx, lm, b, shared)
}

// place links b at target. When b's file went away meanwhile (a gc on
// another host removed it as unused a moment before this realize began to
// use it), the model is fetched again.
func (r *run) place(ctx context.Context, lm lock.Model, b models.Blob, target string) (models.Blob, error) {
	err := models.Place(b, target)
	if err != nil && !exists(b.Path) && r.cfg.Models != nil && ctx.Err() == nil {
		r.cfg.Logger.Warn().Str("model", lm.Name).Msg("the cached model file went away (a gc?); fetching it again")
		if b, err = r.cfg.Models.Fetch(ctx, request(lm)); err == nil {
			err = models.Place(b, target)
		}
	}
	if err != nil {
		return b, fmt.Errorf("model %s: %w", lm.Name, err)
	}
	return b, nil
}

// ModelConflictError is a shared model path that holds a different file.
type ModelConflictError struct {
	Model, Path string
	Size        int64
}

func (e *ModelConflictError) Error() string {
	return fmt.Sprintf("model %s: %s already holds a different file (%d bytes), another version's model or one placed by hand; "+
		"ComfyUI would load it instead of this one: give this model another target_path, or move that file away if nothing needs it (it was left as it is)",
		e.Model, e.Path, e.Size)
}

// sameContent reports whether the file at p (stat old) holds b's bytes:
// same size, then same sha256 (read once; the file is then replaced by a
// link to b).
func sameContent(p string, old os.FileInfo, b models.Blob) bool {
	if old.Size() != b.Size {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == b.SHA256
}

// sameFiles reports whether two paths lead to one file (hard links, or a
// symbolic link and its target).
func sameFiles(a, b string) bool {
	fa, err := os.Stat(a)
	return err == nil && sameFile(fa, b)
}

func sameFile(fi os.FileInfo, path string) bool {
	other, err := os.Stat(path)
	return err == nil && os.SameFile(fi, other)
}

// placeInBuild is the step after the trees: it links the shared models
// into the build's models/ folder and places the models targeted inside
// the build (fetching those), recording what it placed in the marker.
func (r *run) placeInBuild(ctx context.Context) (string, error) {
	if r.skipModels() {
		return "", nil
	}
	var reqs []models.Request
	var todo []int
	linked := 0
	for i, lm := range r.lock.Models {
		link, err := r.linkPath(lm.TargetPath)
		if err != nil {
			return "", fmt.Errorf("model %s: %w", lm.Name, err)
		}
		if placed, ok := r.marker.Models[lm.TargetPath]; ok && placed.matches(lm) {
			if st, ok := statModel(link); ok && st.Size == placed.Size && st.ModTime == placed.ModTime {
				continue
			}
		}
		r.mu.Lock()
		failed := r.failed[lm.TargetPath]
		r.mu.Unlock()
		if failed {
			continue // its fetch failed in this realize already
		}
		if isShared(lm.TargetPath) {
			if b, ok := r.storedBlob(lm); ok {
				if err := r.record(ctx, lm, b, link); err != nil {
					return "", err
				}
				linked++
				continue
			}
		}
		reqs = append(reqs, request(lm))
		todo = append(todo, i)
	}
	detail := ""
	if linked > 0 {
		detail = fmt.Sprintf("%d linked", linked)
	}
	if len(todo) > 0 {
		blobs, fetchErr := r.fetch(ctx, reqs)
		var errs []error
		if fetchErr != nil {
			errs = append(errs, fetchErr)
		}
		for k, i := range todo {
			lm := r.lock.Models[i]
			if blobs[k].Path == "" {
				continue
			}
			link, _ := r.linkPath(lm.TargetPath)
			if err := r.record(ctx, lm, blobs[k], link); err != nil {
				errs = append(errs, err)
			}
		}
		r.mu.Lock()
		err := r.learn(todo, blobs)
		r.mu.Unlock()
		if err != nil {
			return "", err
		}
		if len(errs) > 0 {
			// What was placed is recorded, so a re-run keeps it.
			if err := r.set(func(*Marker) {}); err != nil {
				errs = append(errs, err)
			}
			return "", errors.Join(errs...)
		}
		detail = fmt.Sprintf("%d placed", len(todo)+linked)
	}
	if detail == "" {
		return "", nil
	}
	return detail, r.set(func(*Marker) {})
}

// storedBlob is lm's blob as the fetch step left it, or as the store holds
// it by digest.
func (r *run) storedBlob(lm lock.Model) (models.Blob, bool) {
	r.mu.Lock()
	b, ok := r.blobs[lm.TargetPath]
	placed, had := r.marker.Models[lm.TargetPath]
	r.mu.Unlock()
	if ok {
		return b, true
	}
	digest := lm.SHA256
	if digest == "" && had && placed.matches(lm) {
		digest = placed.SHA256
	}
	if digest == "" || r.cfg.Models == nil {
		return models.Blob{}, false
	}
	p := r.cfg.Models.BlobPath(digest)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return models.Blob{}, false
	}
	return models.Blob{Path: p, SHA256: digest, Size: fi.Size()}, true
}

// record places b at link and notes it in the marker.
func (r *run) record(ctx context.Context, lm lock.Model, b models.Blob, link string) error {
	b, err := r.place(ctx, lm, b, link)
	if err != nil {
		return err
	}
	st, ok := statModel(link)
	if !ok {
		return fmt.Errorf("model %s: %s is not a file after placing it", lm.Name, link)
	}
	st.SHA256 = b.SHA256
	st.Sources = modelSources(lm)
	r.mu.Lock()
	r.marker.Models[lm.TargetPath] = st
	r.mu.Unlock()
	return nil
}

// request asks for lm from its real sources: the lock file holds them
// redacted, the spec's credentials come with the lock in memory.
func request(lm lock.Model) models.Request {
	srcs := lm.FetchSources()
	return models.Request{Item: lm.Name, Source: srcs[0], Alternatives: srcs[1:], SHA256: lm.SHA256, Size: lm.Size}
}

func (r *run) fetch(ctx context.Context, reqs []models.Request) ([]models.Blob, error) {
	if r.cfg.Models == nil {
		return nil, errors.New("no model store configured")
	}
	return r.cfg.Models.FetchAll(ctx, reqs, r.cfg.Jobs)
}

// learn records in the lock the digests of models fetched without one.
func (r *run) learn(todo []int, blobs []models.Blob) error {
	learned := false
	for k, i := range todo {
		if blobs[k].SHA256 == "" {
			continue // its fetch failed
		}
		if r.lock.RecordModel(r.lock.Models[i].TargetPath, blobs[k].SHA256, blobs[k].Size) {
			learned = true
		}
	}
	if learned && r.cfg.SaveLock != nil {
		if err := r.cfg.SaveLock(r.lock); err != nil {
			return fmt.Errorf("record model digests in the lock: %w", err)
		}
	}
	return nil
}
