// Package models fetches model files into a shared, content-addressed store
// and places them where ComfyUI looks for them.
//
// A model is named by a source string (hf://, civitai://, http(s)://, gs://,
// file:// or a local path; see ParseSource). Store.Fetch downloads it once
// into <root>/models/sha256/<hex>, hashing while it streams, resuming with
// HTTP Range after a dropped connection or a killed process, retrying with
// backoff and verifying the expected sha256 when one is given. Without one,
// the digest and size of the first download are recorded in a per-source
// index (trust on first use) and returned so the caller can pin them in the
// lock. On one host, file locks make N workers that fetch the same model at
// once download it once; across hosts sharing the store no lock is trusted:
// each download writes a private partial file and the first finished copy
// of a digest wins (see partial.go). Place links a blob to its final path
// (hardlink, or a relative symlink across file systems), atomically.
//
// Tokens (HF_TOKEN, CIVITAI_TOKEN) come in through Config and never appear
// in logs, errors, index files or returned values.
package models
