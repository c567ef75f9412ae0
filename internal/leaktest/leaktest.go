// Package leaktest fails a test binary whose goroutines outlive its tests:
// every package that starts goroutines (servers, downloads, subprocess
// readers) must stop them, and this is how its tests prove it.
package leaktest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Options choose which goroutines count as leaks.
type Options struct {
	// Grace is how long goroutines get to end after the tests; default 3 s.
	Grace time.Duration
	// Only, when set, restricts the check to goroutines whose stack
	// mentions one of these strings (a package's import path), for
	// packages whose dependencies keep goroutines of their own.
	Only []string
	// Ignore lists more stack substrings to leave out.
	Ignore []string
}

// always are goroutines of the runtime, the test framework and libraries
// that start one at init.
var always = []string{
	"testing.(*M).Run", "leaktest.Leaked", "signal.signal_recv", "runtime.ensureSigM",
	"created by go.opencensus.io/stats/view.init",
}

// Main runs the tests and then the leak check, and exits.
func Main(m *testing.M, o Options) {
	os.Exit(Check(m.Run(), o))
}

// Check returns code, or 1 when the tests passed but goroutines leaked
// (their stacks are printed).
func Check(code int, o Options) int {
	if code != 0 {
		return code
	}
	if leaked := Leaked(o); leaked != "" {
		fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", leaked)
		return 1
	}
	return code
}

// Leaked waits up to o.Grace for the goroutines it watches to end and
// returns the stacks of those that did not ("" when none).
func Leaked(o Options) string {
	if o.Grace <= 0 {
		o.Grace = 3 * time.Second
	}
	deadline := time.Now().Add(o.Grace)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if matches(g, always) || matches(g, o.Ignore) || (len(o.Only) > 0 && !matches(g, o.Only)) {
				continue
			}
			leaked = append(leaked, g)
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func matches(stack string, subs []string) bool {
	for _, s := range subs {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}
