package main

import (
	"fmt"
	"time"
)

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// secondsFlag is a duration flag that also takes a bare number of seconds,
// as the original tool's --timeout did: "300", "5m" and "1h30m" all work.
type secondsFlag time.Duration

func (f *secondsFlag) String() string { return time.Duration(*f).String() }
func (f *secondsFlag) Type() string   { return "duration" }

func (f *secondsFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		d, err = time.ParseDuration(s + "s")
	}
	if err != nil || d < 0 {
		return fmt.Errorf("want a duration such as 90s, 5m or 1h, or a number of seconds")
	}
	*f = secondsFlag(d)
	return nil
}
