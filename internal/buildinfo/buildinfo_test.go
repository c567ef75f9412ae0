package buildinfo

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	Version = "v9.9.9"
	defer func() { Version = "" }()
	got := String("worker")
	for _, want := range []string{"worker v9.9.9\n", "commit: ", "go: go1."} {
		if !strings.Contains(got, want) {
			t.Errorf("String = %q; want it to contain %q", got, want)
		}
	}
}
