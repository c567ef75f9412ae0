// Package envconf reads typed settings from an environment given as a
// lookup function. A Reader keeps the first malformed value as an error, so
// a block of settings is read without a check per line and the caller
// reports one clear message (which variable, what it wants).
package envconf

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Error is a malformed setting.
type Error struct{ Key, Value, Want string }

func (e *Error) Error() string { return fmt.Sprintf("%s=%q: want %s", e.Key, e.Value, e.Want) }

// Reader reads settings through Getenv.
type Reader struct {
	Getenv func(string) string
	err    error
}

// Err is the first malformed setting read, or nil.
func (r *Reader) Err() error { return r.err }

func (r *Reader) fail(key, v, want string) {
	if r.err == nil {
		r.err = &Error{key, v, want}
	}
}

// Str is the first of keys that is set (later keys are older aliases).
func (r *Reader) Str(keys ...string) string {
	for _, k := range keys {
		if v := r.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// Seconds reads a number of seconds (fractions allowed); def when unset.
func (r *Reader) Seconds(key string, def time.Duration) time.Duration {
	v := r.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v + "s")
	if err != nil || d < 0 {
		r.fail(key, v, "a number of seconds")
		return def
	}
	return d
}

// Bytes reads a positive number of bytes; 0 when unset.
func (r *Reader) Bytes(key string) int64 {
	v := r.Getenv(key)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		r.fail(key, v, "a number of bytes")
		return 0
	}
	return n
}

// Count reads a positive whole number; 0 when unset.
func (r *Reader) Count(key string) int {
	v := r.Getenv(key)
	n, err := strconv.Atoi(v)
	if v != "" && (err != nil || n <= 0) {
		r.fail(key, v, "a positive whole number")
	}
	return max(n, 0)
}

// On reports whether key is set to 1, true, yes or on.
func (r *Reader) On(key string) bool { return Truthy(r.Getenv(key)) }

// List splits key's value at commas and white space.
func (r *Reader) List(key string) []string {
	return strings.FieldsFunc(r.Getenv(key), func(c rune) bool { return c == ',' || c == ' ' || c == '\t' || c == '\n' })
}

// Truthy reports whether s says yes: 1, true, yes or on.
func Truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Falsy reports whether s says no: 0, false, no or off. A value that is
// neither Truthy nor Falsy (empty, say) leaves the default.
func Falsy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "false", "no", "off":
		return true
	}
	return false
}
