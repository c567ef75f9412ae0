package jsonx

import (
	"math"
	"testing"
)

func TestMarshal(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{map[string]string{"url": "https://x/o?a=1&b=<2>"}, `{"url":"https://x/o?a=1&b=<2>"}`},
		{"line\nbreak", `"line\nbreak"`},
		{nil, `null`},
	} {
		got, err := Marshal(tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.v, got, err, tc.want)
		}
	}
	if _, err := Marshal(math.NaN()); err == nil {
		t.Error("NaN encoded")
	}
}
