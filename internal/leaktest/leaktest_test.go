package leaktest

import (
	"strings"
	"testing"
	"time"
)

func TestLeaked(t *testing.T) {
	stop := make(chan struct{})
	go func() { <-stop }() // a goroutine of this test: a leak until stopped
	if got := Leaked(Options{Grace: 50 * time.Millisecond}); !strings.Contains(got, "leaktest.TestLeaked") {
		t.Fatalf("the running goroutine was not reported: %q", got)
	}
	if got := Leaked(Options{Grace: 50 * time.Millisecond, Only: []string{"some/other/pkg."}}); got != "" {
		t.Fatalf("Only did not restrict the check: %q", got)
	}
	close(stop)
	if got := Leaked(Options{Grace: time.Second}); got != "" {
		t.Fatalf("a stopped goroutine was reported: %q", got)
	}
}
