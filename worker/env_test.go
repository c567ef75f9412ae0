package main

import (
	"testing"
	"time"
)

// TestSecondsFlag: run-handler's --timeout takes a Go duration or, as the
// original tool's did, a bare number of seconds.
func TestSecondsFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"300", 5 * time.Minute, false},
		{"5m", 5 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"1.5", 1500 * time.Millisecond, false},
		{"0", 0, false},
		{"soon", 0, true},
		{"-5", 0, true},
		{"5 m", 0, true},
		{"", 0, true},
	} {
		var f secondsFlag
		err := f.Set(tc.in)
		if (err != nil) != tc.err || err == nil && time.Duration(f) != tc.want {
			t.Errorf("Set(%q) = %v, %v; want %v (error %v)", tc.in, time.Duration(f), err, tc.want, tc.err)
		}
	}
}
