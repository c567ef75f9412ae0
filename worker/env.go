package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// envReader reads typed settings from the environment, keeping the first
// malformed one as a usage error so that a block of settings is read
// without an error check per line.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) fail(key, v, want string) {
	if e.err == nil {
		e.err = usageErr(fmt.Errorf("%s=%q: want %s", key, v, want))
	}
}

// str is the first of keys that is set (later keys are older aliases).
func (e *envReader) str(keys ...string) string {
	for _, k := range keys {
		if v := e.getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// seconds reads a number of seconds (fractions allowed).
func (e *envReader) seconds(key string, def time.Duration) time.Duration {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v + "s")
	if err != nil || d < 0 {
		e.fail(key, v, "a number of seconds")
		return def
	}
	return d
}

// bytes reads a positive number of bytes; 0 when unset.
func (e *envReader) bytes(key string) int64 {
	v := e.getenv(key)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		e.fail(key, v, "a number of bytes")
		return 0
	}
	return n
}

// count reads a positive whole number; 0 when unset.
func (e *envReader) count(key string) int {
	v := e.getenv(key)
	n, err := strconv.Atoi(v)
	if v != "" && (err != nil || n <= 0) {
		e.fail(key, v, "a positive whole number")
	}
	return max(n, 0)
}

// on reports whether key is set to 1, true, yes or on.
func (e *envReader) on(key string) bool { return truthy(e.getenv(key)) }

// list splits key's value at commas and spaces.
func (e *envReader) list(key string) []string {
	return strings.FieldsFunc(e.getenv(key), func(r rune) bool { return r == ',' || r == ' ' })
}

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func falsy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "false", "no", "off":
		return true
	}
	return false
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
