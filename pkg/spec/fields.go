package spec

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/runpod-comfy/worker/internal/textdist"
)

// checkKeys rejects the first key of o (in document order) not in allowed,
// suggesting the closest allowed key for typos.
func checkKeys(o *object, path string, allowed []string) error {
	for _, k := range o.keys {
		if contains(allowed, k) {
			continue
		}
		msg := fmt.Sprintf("unknown key %q", k)
		if s := closest(k, allowed); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else {
			msg += " (allowed: " + strings.Join(allowed, ", ") + ")"
		}
		return &Error{Path: join(path, k), Msg: msg}
	}
	return nil
}

func asObject(v any, path string, allowed []string) (*object, error) {
	o, ok := v.(*object)
	if !ok {
		return nil, errf(path, "want an object, got %s", typeName(v))
	}
	return o, checkKeys(o, path, allowed)
}

// str reads an optional string field; null reads as absent.
func str(o *object, key, path string) (string, bool, error) {
	v, ok := o.get(key)
	if !ok || v == nil {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, errf(join(path, key), "want a string, got %s", typeName(v))
	}
	return s, true, nil
}

// list reads an optional list field; null reads as empty.
func list(o *object, key string) ([]any, error) {
	v, ok := o.get(key)
	if !ok || v == nil {
		return nil, nil
	}
	l, isList := v.([]any)
	if !isList {
		return nil, errf(key, "want a list, got %s", typeName(v))
	}
	return l, nil
}

// boolish accepts what the original accepted for options: booleans, 0/1 and
// the strings "true"/"false" in the usual spellings.
func boolish(v any, path string) (bool, error) {
	switch t := v.(type) {
	case bool:
		return t, nil
	case json.Number:
		switch t {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "1", "true", "yes", "on":
			return true, nil
		case "0", "false", "no", "off", "":
			return false, nil
		}
	}
	return false, errf(path, "want a boolean, got %s", render(v))
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func envMap(top *object) (map[string]string, error) {
	env := map[string]string{}
	v, ok := top.get("env")
	if !ok || v == nil {
		return env, nil
	}
	o, isObj := v.(*object)
	if !isObj {
		return nil, errf("env", "want an object of strings, got %s", typeName(v))
	}
	for _, k := range o.keys {
		p := join("env", k)
		if !envName.MatchString(k) {
			return nil, errf(p, "invalid environment variable name %q", k)
		}
		switch val := o.vals[k].(type) {
		case nil:
			env[k] = ""
		case string:
			env[k] = val
		default:
			return nil, errf(p, "want a string, got %s", typeName(val))
		}
	}
	return env, nil
}

var optionKeys = []string{"offline", "skip_models", "skip_python", "python", "system_site_packages", "install_requirements", "comfy_args"}

func (d *decoder) options(top *object) (Options, error) {
	var opts Options
	v, ok := top.get("options")
	if !ok || v == nil {
		return opts, nil
	}
	o, err := asObject(v, "options", optionKeys)
	if err != nil {
		return opts, err
	}
	for _, k := range o.keys {
		p := join("options", k)
		val := o.vals[k]
		switch k {
		case "offline":
			opts.Offline, err = boolish(val, p)
		case "skip_models":
			opts.SkipModels, err = boolish(val, p)
		case "skip_python":
			opts.SkipPython, err = boolish(val, p)
		case "system_site_packages":
			opts.SystemSitePackages, err = boolish(val, p)
		case "install_requirements":
			var b bool
			b, err = boolish(val, p)
			opts.InstallRequirements = &b
		case "python":
			s, isStr := val.(string)
			if !isStr || strings.TrimSpace(s) == "" || strings.ContainsAny(s, "\n\x00") {
				return opts, errf(p, "want an interpreter name or path such as \"python3.11\", got %s", render(val))
			}
			opts.Python = strings.TrimSpace(s)
		case "comfy_args":
			opts.ComfyArgs, err = stringList(val, p)
		}
		if err != nil {
			return opts, err
		}
	}
	return opts, nil
}

func stringList(v any, path string) ([]string, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, errf(path, "want a list of strings, got %s", typeName(v))
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, isStr := e.(string)
		if !isStr {
			return nil, errf(index(path, i), "want a string, got %s", typeName(e))
		}
		out = append(out, s)
	}
	return out, nil
}

func (d *decoder) packages(top *object) ([]string, error) {
	l, err := list(top, "python_packages")
	if err != nil {
		return nil, err
	}
	var out []string
	for i, e := range l {
		p := index("python_packages", i)
		s, ok := e.(string)
		if !ok {
			return nil, errf(p, "want a pip requirement string such as \"onnx==1.16.0\", got %s", typeName(e))
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue // the original dropped blanks
		}
		if strings.ContainsAny(s, "\n\r\x00") {
			return nil, errf(p, "a requirement may not contain a line break")
		}
		out = append(out, s)
	}
	return out, nil
}

// render shows a tree value in an error message.
func render(v any) string {
	switch t := v.(type) {
	case string:
		return strconv.Quote(t)
	case json.Number:
		return string(t)
	case bool:
		return strconv.FormatBool(t)
	}
	return typeName(v)
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// closest returns the allowed key within edit distance 2 of k, if any.
func closest(k string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := textdist.Distance(strings.ToLower(k), a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}
