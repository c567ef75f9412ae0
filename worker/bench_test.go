package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/lock"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// twentyNodeSpec publishes a core and n node repositories and returns a
// spec that follows each by branch, so every entry needs the network until
// locked.
func twentyNodeSpec(tb testing.TB, srv *gittest.Server, n int) string {
	tb.Helper()
	core := gittest.NewRepo(tb)
	core.Commit("c", map[string]string{"main.py": ""})
	srv.Add("github.com/comfyanonymous/ComfyUI", core)
	var nodes []string
	for i := 0; i < n; i++ {
		r := gittest.NewRepo(tb)
		r.Commit("n", map[string]string{"__init__.py": fmt.Sprint(i)})
		srv.Add(fmt.Sprintf("github.com/owner%d/node%d", i, i), r)
		nodes = append(nodes, fmt.Sprintf(`{"repo": "https://github.com/owner%d/node%d", "ref": "main"}`, i, i))
	}
	return `{"schema_version": 2, "version_id": "bench", "comfy": {"repo": "https://github.com/comfyanonymous/ComfyUI", "ref": "main"},
	  "custom_nodes": [` + strings.Join(nodes, ",") + `]}`
}

// TestValidateUnchangedIsFastAndOffline states the figure the benchmark
// measures as a test, so CI catches a regression: validate of an
// unchanged 20-node spec answers from the lock with no request, fast.
func TestValidateUnchangedIsFastAndOffline(t *testing.T) {
	e := newTestEnv(t)
	e.writeSpec("bench", twentyNodeSpec(t, e.srv, 20))
	e.mustRun("resolve", "bench")
	before := e.srv.Requests()
	res := testing.Benchmark(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if code := run(context.Background(), []string{"validate", "bench"}, strings.NewReader(""), io.Discard, io.Discard, e.getenv); code != 0 {
				b.Fatalf("exit %d", code)
			}
		}
	})
	if got := e.srv.Requests() - before; got != 0 {
		t.Fatalf("validate of an unchanged spec made %d requests", got)
	}
	per := time.Duration(res.NsPerOp())
	t.Logf("validate, unchanged 20-node spec with lock: %v/op over %d runs, 0 requests", per, res.N)
	if per > 50*time.Millisecond {
		t.Errorf("validate took %v, budget 50ms", per)
	}
}

// BenchmarkResolve20 resolves a 20-node spec from scratch against the
// smart-HTTP server: concurrently (the default) and one at a time.
func BenchmarkResolve20(b *testing.B) {
	srv := gittest.NewServer(b)
	doc := twentyNodeSpec(b, srv, 20)
	s, err := spec.Decode([]byte(doc), "")
	if err != nil {
		b.Fatal(err)
	}
	client := gitsrc.NewClient(gitsrc.Options{Rewrites: []gitsrc.Rewrite{{From: "https://github.com/", To: srv.URL + "/github.com/"}}})
	for _, jobs := range []int{1, 8} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, _, err := lock.Resolve(context.Background(), s, nil, client, lock.Options{Jobs: jobs}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
