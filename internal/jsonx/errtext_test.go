package jsonx

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestErrorTextHidesGoTypes(t *testing.T) {
	type repo struct {
		Repo string `json:"repo"`
	}
	type doc struct {
		Comfy  repo                       `json:"comfy"`
		Models []struct{ Size int64 }     `json:"models"`
		Extra  map[string]json.RawMessage `json:"extra"`
		Flag   bool                       `json:"flag"`
	}
	cases := []struct{ in, want string }{
		{`{"comfy": []}`, "at comfy: want an object, got a list"},
		{`{"comfy": {"repo": 7}}`, "at comfy.repo: want a string, got a number"},
		{`{"models": [{"Size": -1.5}]}`, "at models.Size: want a whole number, got a number -1.5"},
		{`{"extra": []}`, "at extra: want an object, got a list"},
		{`{"flag": "yes"}`, "at flag: want true or false, got a string"},
		{`[]`, "at the top level: want an object, got a list"},
		{`{"comfy": `, "the JSON ends early"},
		{`{"comfy" 1}`, "invalid JSON at byte"},
	}
	for _, c := range cases {
		var d doc
		err := json.Unmarshal([]byte(c.in), &d)
		if err == nil {
			t.Fatalf("%s: decoded", c.in)
		}
		got := ErrorText(err)
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want it to contain %q", c.in, got, c.want)
		}
		for _, internal := range []string{"Go value", "Go struct", "struct {", "map[", "json.RawMessage", "jsonx."} {
			if strings.Contains(got, internal) {
				t.Errorf("%s: %q shows Go internals (%q)", c.in, got, internal)
			}
		}
	}
}
