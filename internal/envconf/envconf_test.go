package envconf

import (
	"errors"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	env := map[string]string{"S": "1.5", "B": "1024", "ON": "Yes", "L": "a, b c", "OLD": "x", "BAD": "soon", "NEG": "-1"}
	r := &Reader{Getenv: func(k string) string { return env[k] }}
	if got := r.Seconds("S", 0); got != 1500*time.Millisecond {
		t.Errorf("Seconds = %v", got)
	}
	if got := r.Seconds("UNSET", 7*time.Second); got != 7*time.Second {
		t.Errorf("Seconds default = %v", got)
	}
	if got := r.Bytes("B"); got != 1024 {
		t.Errorf("Bytes = %d", got)
	}
	if !r.On("ON") || r.On("UNSET") {
		t.Error("On")
	}
	if got := r.List("L"); len(got) != 3 || got[2] != "c" {
		t.Errorf("List = %q", got)
	}
	if got := r.Str("NEW", "OLD"); got != "x" {
		t.Errorf("Str with an alias = %q", got)
	}
	if r.Err() != nil {
		t.Fatalf("Err before a bad value = %v", r.Err())
	}
	r.Seconds("BAD", 0)
	r.Bytes("NEG")
	var e *Error
	if !errors.As(r.Err(), &e) || e.Key != "BAD" || e.Want != "a number of seconds" {
		t.Errorf("Err = %v; want the first bad setting, BAD", r.Err())
	}
}

func TestTruthyFalsy(t *testing.T) {
	for _, tc := range []struct {
		in          string
		truthy, fal bool
	}{{"1", true, false}, {" ON ", true, false}, {"off", false, true}, {"0", false, true}, {"", false, false}, {"maybe", false, false}} {
		if Truthy(tc.in) != tc.truthy || Falsy(tc.in) != tc.fal {
			t.Errorf("%q: truthy %v falsy %v", tc.in, Truthy(tc.in), Falsy(tc.in))
		}
	}
}
