package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// corpusDir is the original tool's real spec files with their expected
// outcomes. They are reference data outside the repo: the test runs when
// they are there (COMFY_CORPUS_DIR, or ../../shared beside the checkout).
func corpusDir(t *testing.T) string {
	dir := os.Getenv("COMFY_CORPUS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "reference", "original-corpus")
	}
	if _, err := os.Stat(filepath.Join(dir, "EXPECT.tsv")); err != nil {
		t.Skipf("original corpus not found at %s (set COMFY_CORPUS_DIR): %v", dir, err)
	}
	return dir
}

type corpusRow struct {
	path, check, expect, tier string
	entries                   int
}

func readExpect(t *testing.T, dir string) []corpusRow {
	f, err := os.Open(filepath.Join(dir, "EXPECT.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []corpusRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		c := strings.Split(line, "\t")
		if len(c) < 5 {
			t.Fatalf("bad EXPECT row %q", line)
		}
		n, _ := strconv.Atoi(c[4])
		rows = append(rows, corpusRow{path: c[0], check: c[1], expect: c[2], tier: c[3], entries: n})
	}
	return rows
}

var githubURL = regexp.MustCompile(`https://github\.com/([A-Za-z0-9._-]+/[A-Za-z0-9._-]+?)(?:\.git)?["/]`)

// TestOriginalCorpus runs every file of the original's corpus through the
// CLI, with every GitHub repository it names served locally (branches main,
// master and Main, as the files use all three), and checks EXPECT.tsv.
func TestOriginalCorpus(t *testing.T) {
	dir := corpusDir(t)
	rows := readExpect(t, dir)
	e := newTestEnv(t)
	served := map[string]bool{}
	for _, r := range rows {
		data, err := os.ReadFile(filepath.Join(dir, r.path))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range githubURL.FindAllStringSubmatch(string(data), -1) {
			if served[m[1]] {
				continue
			}
			served[m[1]] = true
			repo := gittest.NewRepo(t)
			repo.Commit("initial", map[string]string{"README.md": m[1]})
			repo.Branch("master")
			repo.Branch("Main")
			e.srv.Add("github.com/"+m[1], repo)
		}
	}
	checked := 0
	for i, r := range rows {
		r := r
		t.Run(r.path, func(t *testing.T) {
			src := filepath.Join(dir, r.path)
			switch r.check {
			case "validate":
				id := strings.SplitN(filepath.Base(r.path), "@", 2)[0]
				data, _ := os.ReadFile(src)
				e.writeSpec(id, string(data))
				code, out, errs := e.run("validate", id)
				want := map[string]int{"ok": 0, "invalid": 2}[r.expect]
				if code != want {
					t.Fatalf("validate %s: exit %d, want %d\n%s%s", r.path, code, want, out, errs)
				}
				if code == 2 && !strings.Contains(errs, id+".json") {
					t.Errorf("the error does not name the file: %s", errs)
				}
				if code == 0 {
					checkLockPinned(t, e, id)
				}
			case "create-nodes", "create-models":
				id := fmt.Sprintf("corpus-%d", i)
				flag := map[string]string{"create-nodes": "--nodes-file", "create-models": "--models-file"}[r.check]
				e.mustRun("create", id, "--repo", "https://github.com/comfyanonymous/ComfyUI@master", flag, src)
				written := filepath.Join(e.vars["COMFY_VERSIONS_DIR"], id+".json")
				var raw struct {
					Nodes  []json.RawMessage `json:"custom_nodes"`
					Models []json.RawMessage `json:"models"`
				}
				data, _ := os.ReadFile(written)
				if err := json.Unmarshal(data, &raw); err != nil {
					t.Fatal(err)
				}
				got := len(raw.Nodes)
				if r.check == "create-models" {
					got = len(raw.Models)
				}
				if got != r.entries {
					t.Errorf("created spec keeps %d entries, want %d", got, r.entries)
				}
				e.mustRun("validate", id)
				checkLockPinned(t, e, id)
			case "none":
				return
			default:
				t.Fatalf("unknown check %q", r.check)
			}
			checked++
		})
	}
	if checked == 0 {
		t.Fatal("no corpus row was checked")
	}
	t.Logf("%d corpus rows checked against %d locally served repositories", checked, len(served))
}

func checkLockPinned(t *testing.T, e *testEnv, id string) {
	t.Helper()
	l, err := lock.Read(lock.Path(e.vars["COMFY_CACHE_ROOT"], id))
	if err != nil {
		t.Fatal(err)
	}
	if !spec.IsFullSHA(l.Comfy.Commit) {
		t.Errorf("lock comfy commit %q", l.Comfy.Commit)
	}
	for _, n := range l.CustomNodes {
		if !spec.IsFullSHA(n.Commit) {
			t.Errorf("lock node %s commit %q", n.Name, n.Commit)
		}
	}
}
