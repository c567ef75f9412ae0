package jsonx

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// ErrorText describes a decoding error of encoding/json in a user's
// terms: where in the document (a JSON path, a byte offset) and what was
// expected, never a Go type such as "struct { ... }" or
// "map[string]json.RawMessage". Other errors keep their text.
func ErrorText(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		where := "the top level"
		if te.Field != "" {
			where = te.Field
		}
		return fmt.Sprintf("at %s: want %s, got %s", where, kindName(te.Type), valueName(te.Value))
	case errors.As(err, &se) && se.Error() == "unexpected end of JSON input":
		return "the JSON ends early (is the file truncated?)"
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	case err != nil:
		return err.Error()
	}
	return ""
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another value"
}

// valueName turns encoding/json's description of the JSON value ("array",
// "number -1", "string") into words.
func valueName(v string) string {
	switch v {
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "null":
		return "null"
	}
	if len(v) >= 6 && v[:6] == "number" {
		return "a number" + v[6:]
	}
	return v
}
