package models

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// Place makes blob visible at target (e.g. MODELS_DIR/loras/x.safetensors).
// It hardlinks when target is on the blob's file system: a hardlink keeps
// working when the volume is mounted elsewhere. Otherwise it makes a
// relative symlink, never an absolute one, so a build moved together with
// its cache keeps working. The link is made under a temp name and renamed
// over target, so target is never missing or half made. A target that
// already is the blob (same inode, or a symlink to it) is left alone.
func Place(blob Blob, target string) error {
	if blob.Path == "" {
		return errors.New("place model: empty blob")
	}
	blobAbs, err := filepath.Abs(blob.Path)
	if err != nil {
		return fmt.Errorf("place model: %w", err)
	}
	targetAbs, err := filepath.Abs(target)
	if err != nil {
		return fmt.Errorf("place model: %w", err)
	}
	bfi, err := os.Stat(blobAbs)
	if err != nil {
		return fmt.Errorf("place model %s: blob: %w", target, err)
	}
	if tfi, err := os.Stat(targetAbs); err == nil {
		if tfi.IsDir() {
			return fmt.Errorf("place model %s: a directory is in the way; remove it", target)
		}
		if os.SameFile(bfi, tfi) && linkIsRelative(targetAbs) {
			return nil
		}
	}
	dir := filepath.Dir(targetAbs)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("place model %s: %w", target, err)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(targetAbs)+".link-"+randHex())
	if err := hardlink(blobAbs, tmp); err != nil {
		// Cross-device, or a file system without hardlinks.
		rel, rerr := filepath.Rel(dir, blobAbs)
		if rerr != nil {
			return fmt.Errorf("place model %s: %w", target, rerr)
		}
		if serr := os.Symlink(rel, tmp); serr != nil {
			return fmt.Errorf("place model %s: hardlink: %v; symlink: %w", target, err, serr)
		}
	}
	if err := os.Rename(tmp, targetAbs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("place model %s: %w", target, err)
	}
	return fsutil.SyncDir(dir)
}

// linkIsRelative is false for an absolute symlink, which Place replaces
// even though it resolves to the blob today.
func linkIsRelative(p string) bool {
	dest, err := os.Readlink(p)
	if err != nil {
		return true // not a symlink: a hardlink or the blob itself
	}
	return !filepath.IsAbs(dest)
}

// hardlink is os.Link; tests replace it to take the symlink path on one
// file system.
var hardlink = os.Link

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
