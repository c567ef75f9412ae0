package runpod

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunLocal(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good.json", `{"input": {"fail": false, "v": 7}}`)
	withID := file("id.json", `{"id": "my-job", "input": {"v": 1}}`)
	noInput := file("noinput.json", `{"id": "x"}`)
	nullInput := file("null.json", `{"input": null}`)
	broken := file("broken.json", `{"input": `)

	// The handler fails when asked to, panics on "panic", else echoes.
	var gotID string
	h := func(ctx context.Context, j Job, p Progress) Result {
		gotID = j.ID
		p.Update(map[string]int{"step": 1})
		var in struct {
			Fail, Panic bool
			V           int
		}
		_ = json.Unmarshal(j.Input, &in)
		switch {
		case in.Panic:
			panic("kaboom")
		case in.Fail:
			return Result{Error: "it failed", Output: map[string]string{"error_type": "comfy_execution"}}
		}
		return Result{Output: map[string]int{"v": in.V}}
	}

	for _, tc := range []struct {
		name      string
		lo        LocalOptions
		wantCode  int
		wantOut   string // JSON printed, compared by value
		wantInErr string // substring of the printed error instead
		wantID    string
	}{
		{name: "file", lo: LocalOptions{TestInputFile: good}, wantCode: ExitOK, wantOut: `{"output": {"v": 7}}`, wantID: LocalJobID},
		{name: "flag wins over file", lo: LocalOptions{TestInput: `{"input": {"v": 3}}`, TestInputFile: good}, wantCode: ExitOK, wantOut: `{"output": {"v": 3}}`},
		{name: "id kept", lo: LocalOptions{TestInputFile: withID}, wantCode: ExitOK, wantOut: `{"output": {"v": 1}}`, wantID: "my-job"},
		{name: "handler failure", lo: LocalOptions{TestInput: `{"input": {"fail": true}}`}, wantCode: ExitFailure,
			wantOut: `{"output": {"error_type": "comfy_execution"}, "error": "it failed"}`},
		{name: "handler panic", lo: LocalOptions{TestInput: `{"input": {"panic": true}}`}, wantCode: ExitFailure, wantInErr: "crashed: kaboom"},
		{name: "missing file", lo: LocalOptions{TestInputFile: filepath.Join(dir, "nope.json")}, wantCode: ExitFailure, wantInErr: "nope.json not found"},
		{name: "no input", lo: LocalOptions{TestInputFile: noInput}, wantCode: ExitFailure, wantInErr: "no input parameter"},
		{name: "null input", lo: LocalOptions{TestInputFile: nullInput}, wantCode: ExitFailure, wantInErr: "no input parameter"},
		{name: "invalid JSON file", lo: LocalOptions{TestInputFile: broken}, wantCode: ExitFailure, wantInErr: "not a JSON job object"},
		{name: "invalid flag", lo: LocalOptions{TestInput: `[1]`}, wantCode: ExitFailure, wantInErr: "--test_input is not a JSON job object"},
		{name: "trailing data", lo: LocalOptions{TestInput: `{"input": 1} {}`}, wantCode: ExitFailure, wantInErr: "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			tc.lo.Out = &out
			gotID = ""
			log, _ := testLogger(t, "")
			code := RunLocal(context.Background(), h, tc.lo, WithLogger(log))
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			if !strings.HasSuffix(out.String(), "}\n") {
				t.Errorf("output is not one JSON document and a newline: %q", out.String())
			}
			if tc.wantOut != "" {
				jsonEq(t, out.Bytes(), tc.wantOut)
			}
			if tc.wantInErr != "" {
				var body struct{ Error string }
				if err := json.Unmarshal(out.Bytes(), &body); err != nil || !strings.Contains(body.Error, tc.wantInErr) {
					t.Errorf("printed %s, want an error containing %q", out.String(), tc.wantInErr)
				}
			}
			if tc.wantID != "" && gotID != tc.wantID {
				t.Errorf("job id %q, want %q", gotID, tc.wantID)
			}
		})
	}
}

// TestRunLocalDefaultFile checks the SDK's relative ./test_input.json.
func TestRunLocalDefaultFile(t *testing.T) {
	t.Chdir(t.TempDir())
	var out bytes.Buffer
	if code := RunLocal(context.Background(), echo, LocalOptions{Out: &out}); code != ExitFailure {
		t.Errorf("without test_input.json: exit %d", code)
	}
	if err := os.WriteFile(DefaultTestInputFile, []byte(`{"input": "hi"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := RunLocal(context.Background(), echo, LocalOptions{Out: &out}); code != ExitOK {
		t.Errorf("with test_input.json: exit %d", code)
	}
	jsonEq(t, out.Bytes(), `{"output": "hi"}`)
}
