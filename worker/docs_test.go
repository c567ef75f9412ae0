package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/pkg/comfy"
	"github.com/runpod-comfy/worker/pkg/job"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// The user documentation (docs/*.md) promises things about this binary. These
// tests hold it to them: every example file decodes with the real decoders,
// every example is shown in a document, every `worker ...` command line in a
// document parses against the real command tree, and every environment
// variable the deployment guide names is one the code reads.

const docsRoot = "../docs"

// userDocs are the documents whose commands and names are checked.
var userDocs = []string{"quickstart.md", "spec.md", "job-api.md", "runpod-deployment.md", "operations.md"}

func readDocs(t *testing.T) map[string]string {
	t.Helper()
	docs := map[string]string{}
	for _, name := range userDocs {
		b, err := os.ReadFile(filepath.Join(docsRoot, name))
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = string(b)
	}
	return docs
}

// exampleFiles maps each example's path (relative to docs/examples) to its
// content.
func exampleFiles(t *testing.T) map[string][]byte {
	t.Helper()
	root := filepath.Join(docsRoot, "examples")
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example files under docs/examples")
	}
	return files
}

// legacyExamples are specs written the original tool's way: they must load,
// and must warn (the docs say validate tells what to change).
var legacyExamples = map[string]bool{"versions/wan-legacy.json": true}

func TestDocsExamples(t *testing.T) {
	docs := readDocs(t)
	all := strings.Join(func() []string {
		var s []string
		for _, d := range docs {
			s = append(s, d)
		}
		return s
	}(), "\n")
	for rel, data := range exampleFiles(t) {
		t.Run(rel, func(t *testing.T) {
			// Examples are shown by content, so a reader never has to open
			// the file, and the two cannot drift apart.
			if !strings.Contains(all, strings.TrimSpace(string(data))) {
				t.Errorf("docs/examples/%s is not shown verbatim in any of %v", rel, userDocs)
			}
			kind, _, _ := strings.Cut(rel, "/")
			switch kind {
			case "versions":
				s, err := spec.Decode(data, rel)
				if err != nil {
					t.Fatalf("spec does not decode: %v", err)
				}
				if legacyExamples[rel] != (len(s.Warnings) > 0) {
					t.Errorf("legacy=%v but warnings=%v", legacyExamples[rel], s.Warnings)
				}
			case "invalid":
				_, err := spec.Decode(data, rel)
				if err == nil || !spec.IsInvalid(err) {
					t.Fatalf("an invalid example decoded (err=%v)", err)
				}
			case "jobs":
				var req struct {
					Input json.RawMessage `json:"input"`
				}
				dec := json.NewDecoder(bytes.NewReader(data))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&req); err != nil || len(req.Input) == 0 {
					t.Fatalf("not a {\"input\": {...}} request: %v", err)
				}
				d := job.Defaults{}
				if strings.HasPrefix(filepath.Base(rel), "worker-comfyui-request") {
					// As sent by worker-comfyui's clients, to an endpoint set
					// up for them.
					d = job.Defaults{VersionID: "demo", ResponseFormat: "worker-comfyui"}
				}
				if _, err := job.ParseInput(req.Input, d); err != nil {
					t.Fatalf("job input refused: %v", err)
				}
			case "workflows":
				if _, err := comfy.ParseWorkflow(data); err != nil {
					t.Fatalf("workflow refused: %v", err)
				}
			case "models":
				ms, _, err := spec.ParseModels(data, rel)
				if err != nil || len(ms) == 0 {
					t.Fatalf("model list: %d models, %v", len(ms), err)
				}
			case "nodes":
				ns, _, err := spec.ParseNodes(data, rel)
				if err != nil || len(ns) == 0 {
					t.Fatalf("node list: %d nodes, %v", len(ns), err)
				}
			case "snapshots":
				snap, err := spec.ParseSnapshot(data, rel)
				if err != nil || len(snap.Nodes) == 0 || snap.ComfyCommit == "" {
					t.Fatalf("snapshot: %+v, %v", snap, err)
				}
			default:
				t.Errorf("example %s is in no known folder (versions, invalid, jobs, workflows, models, nodes, snapshots)", rel)
			}
		})
	}
}

// The examples that copy a file of the repository must stay identical to it.
func TestDocsExampleCopies(t *testing.T) {
	for ex, orig := range map[string]string{
		"versions/sd15-basic.json": "../versions/sd15-basic.json",
		"jobs/basic.json":          "../test_input.json",
	} {
		a, err := os.ReadFile(filepath.Join(docsRoot, "examples", ex))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(orig)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("docs/examples/%s differs from %s: copy it again and update the docs", ex, orig)
		}
	}
}

// TestDocsExampleSpecsCLI runs `worker validate --offline` on the example
// specs: pinned ones pass with no network and no lock; invalid ones exit 2.
func TestDocsExampleSpecsCLI(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want int
	}{{"versions", exitOK}, {"invalid", exitUsage}} {
		dir, err := filepath.Abs(filepath.Join(docsRoot, "examples", tc.dir))
		if err != nil {
			t.Fatal(err)
		}
		entries, err := spec.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if tc.want == exitOK {
				s, err := spec.LoadFile(e.Path)
				if err != nil || !allPinned(s) {
					continue // needs the network to resolve its refs
				}
			}
			tmp := t.TempDir()
			env := map[string]string{
				"HOME": tmp, "COMFY_VERSIONS_DIR": dir, "COMFY_CACHE_ROOT": filepath.Join(tmp, "cache"),
				"COMFY_BUILDS_ROOT": filepath.Join(tmp, "builds"), "RUNPOD_VOLUME_ROOT": filepath.Join(tmp, "no-volume"),
				"COMFY_LOG_FORMAT": "json",
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"validate", e.ID, "--offline"}, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
			if code != tc.want {
				t.Errorf("worker validate %s --offline (%s): exit %d, want %d\n%s%s", e.ID, tc.dir, code, tc.want, out.String(), errb.String())
			}
		}
	}
}

func allPinned(s *spec.Spec) bool {
	if !s.Comfy.Pinned() {
		return false
	}
	for _, n := range s.CustomNodes {
		if !n.Pinned() {
			return false
		}
	}
	return true
}

var (
	fenceRE  = regexp.MustCompile("(?ms)^[ \t]*```([a-z]*)\n(.*?)^[ \t]*```")
	inlineRE = regexp.MustCompile("`(worker [^`]+)`")
	// shellLangs are the fences holding commands; output goes in "text".
	shellLangs = map[string]bool{"": true, "sh": true, "bash": true, "shell": true, "console": true}
	// segmentRE splits a shell line into commands.
	segmentRE = regexp.MustCompile(`&&|;| \| `)
	// wrappers may precede the program name in a command.
	wrappers = map[string]bool{"go": true, "run": true, "time": true, "exec": true, "sudo": true}
)

// commandLines returns every `worker ...` invocation in a document: lines
// of shell code blocks and inline code spans that start with worker.
func commandLines(doc string) []string {
	var lines []string
	for _, m := range fenceRE.FindAllStringSubmatch(doc, -1) {
		if !shellLangs[m[1]] {
			continue
		}
		body := strings.ReplaceAll(m[2], "\\\n", " ")
		for _, line := range strings.Split(body, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "$ "))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			lines = append(lines, line)
		}
	}
	for _, m := range inlineRE.FindAllStringSubmatch(doc, -1) {
		lines = append(lines, m[1])
	}
	return lines
}

// workerArgs finds the worker invocations in one shell line and returns the
// arguments of each.
func workerArgs(line string) [][]string {
	var out [][]string
	for _, seg := range segmentRE.Split(line, -1) {
		toks := shellFields(seg)
		start := -1
		for i, tok := range toks {
			if tok == "worker" || strings.HasSuffix(tok, "/worker") {
				start = i
				break
			}
			// Only a command position counts: after env assignments or
			// a wrapper such as `go run` or `time`.
			assignment := strings.Contains(tok, "=") && !strings.HasPrefix(tok, "-")
			if !assignment && !wrappers[tok] {
				break
			}
		}
		if start < 0 {
			continue
		}
		var args []string
		for i := start + 1; i < len(toks); i++ {
			tok := toks[i]
			if tok == ">" || tok == ">>" || tok == "2>" || tok == "<" {
				i++ // and its target
				continue
			}
			if strings.HasPrefix(tok, ">") || strings.HasPrefix(tok, "2>") {
				continue
			}
			// Usage notation: [--flag] and ellipses.
			tok = strings.NewReplacer("[", "", "]", "", "…", "").Replace(tok)
			if tok != "" {
				args = append(args, tok)
			}
		}
		out = append(out, args)
	}
	return out
}

// shellFields splits like a shell: whitespace separates, quotes group.
func shellFields(s string) []string {
	var fields []string
	var cur strings.Builder
	inField := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inField = r, true
		case r == ' ' || r == '\t':
			if inField {
				fields = append(fields, cur.String())
				cur.Reset()
				inField = false
			}
		default:
			cur.WriteRune(r)
			inField = true
		}
	}
	if inField {
		fields = append(fields, cur.String())
	}
	return fields
}

func TestDocsCommands(t *testing.T) {
	n := 0
	for name, doc := range readDocs(t) {
		for _, line := range commandLines(doc) {
			for _, args := range workerArgs(line) {
				n++
				root := (&app{getenv: func(string) string { return "" }}).rootCmd()
				cmd, rest, err := root.Find(args)
				if err != nil {
					t.Errorf("%s: `%s`: %v", name, line, err)
					continue
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Errorf("%s: `%s`: %s: %v", name, line, cmd.CommandPath(), err)
					continue
				}
				// The root takes no arguments: a word left over there is
				// an unknown subcommand.
				if cmd == root && len(cmd.Flags().Args()) > 0 {
					t.Errorf("%s: `%s`: unknown subcommand %q", name, line, cmd.Flags().Args()[0])
				}
			}
		}
	}
	t.Logf("%d worker command lines checked", n)
	if n < 20 {
		t.Errorf("only %d worker command lines found in the docs: is the extraction broken?", n)
	}
}

var envNameRE = regexp.MustCompile("`((?:COMFY|RUNPOD|GCS|S3|BUCKET)_[A-Z0-9_]+|OUTPUT_MODE|RESPONSE_FORMAT|MODELS_DIR|HF_TOKEN|HUGGINGFACE_TOKEN|CIVITAI_TOKEN|GOOGLE_APPLICATION_CREDENTIALS|XDG_CACHE_HOME)`")

// TestDocsEnvNames checks that every variable the operator-facing documents
// name is read by the code: it must appear as a string literal in a non-test
// Go file.
func TestDocsEnvNames(t *testing.T) {
	var src bytes.Buffer
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	docs := readDocs(t)
	checked := 0
	for _, name := range []string{"runpod-deployment.md", "quickstart.md", "operations.md", "job-api.md"} {
		for _, m := range envNameRE.FindAllStringSubmatch(docs[name], -1) {
			checked++
			if !bytes.Contains(src.Bytes(), []byte(`"`+m[1]+`"`)) {
				t.Errorf("%s names %s, which no Go source reads", name, m[1])
			}
		}
	}
	if checked == 0 {
		t.Error("no environment variables found in the docs")
	}
}
