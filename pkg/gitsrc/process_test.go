package gitsrc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/gittest"
	"github.com/runpod-comfy/worker/pkg/cache"
)

// helperEnv carries a FetchRequest (JSON) to the re-executed test binary.
const helperEnv = "GITSRC_TEST_FETCH_REQUEST"

// TestHelperProcess is not a test: run as a subprocess by the tests below,
// it performs one Fetch and prints the result as JSON, so real separate
// processes contend for the cache.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	var req FetchRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := zerolog.New(os.Stderr).Level(zerolog.InfoLevel)
	res, err := NewClient(Options{Logger: log}).Fetch(context.Background(), req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// startHelper starts a process that fetches req.
func startHelper(t *testing.T, ctx context.Context, req FetchRequest) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	spec, _ := json.Marshal(req)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stdout, &stderr
}

// Two processes fetching the same commit at once both succeed; the lock
// makes the second wait and find the first one's result, so the server
// sees one fetch's requests.
func TestFetchTwoProcesses(t *testing.T) {
	t.Parallel()
	r, sha := bigRepo(t)

	// The same fetch alone, for the number of requests it takes.
	solo := gittest.NewServer(t)
	soloURL := solo.Add("github.com/owner/big", r)
	if _, err := NewClient(Options{}).Fetch(context.Background(), FetchRequest{CacheDir: t.TempDir(), URL: soloURL, Commit: sha}); err != nil {
		t.Fatal(err)
	}
	oneFetch := solo.Requests()

	// Holding the pack back keeps the first process inside its fetch while
	// the second arrives.
	backend := gittest.NewServer(t)
	backend.Add("github.com/owner/big", r)
	stall := newStaller(t, backend.URL)
	stall.delay = 500 * time.Millisecond
	srv := gittest.NewServerWithOptions(t, gittest.ServerOptions{Intercept: stall.intercept})
	u := srv.Add("github.com/owner/big", r)

	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req := FetchRequest{CacheDir: cache, URL: u, Commit: sha}
	var outs []*bytes.Buffer
	var cmds []*exec.Cmd
	var errs []*bytes.Buffer
	for range 2 {
		cmd, out, stderr := startHelper(t, ctx, req)
		cmds, outs, errs = append(cmds, cmd), append(outs, out), append(errs, stderr)
	}
	paths, waited := map[FetchPath]int{}, 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, errs[i])
		}
		var res FetchResult
		if err := json.Unmarshal(outs[i].Bytes(), &res); err != nil || res.Commit != sha {
			t.Fatalf("process %d printed %q: %v", i, outs[i], err)
		}
		paths[res.Path]++
		if bytes.Contains(errs[i].Bytes(), []byte("waiting for another fetch")) {
			waited++
		}
	}
	if waited != 1 {
		t.Fatalf("%d processes waited for the lock, want 1 (did they overlap?)\n%s\n%s", waited, errs[0], errs[1])
	}
	if paths[PathSHA] != 1 || paths[PathCached] != 1 {
		t.Fatalf("paths taken = %v, want one fetch and one cached", paths)
	}
	if n := srv.Requests(); n != oneFetch {
		t.Fatalf("two processes made %d requests, one fetch makes %d", n, oneFetch)
	}
	dir, _ := RepoDir(cache, u)
	assertCommitComplete(t, dir, sha)
}

// A process killed with SIGKILL in the middle of a fetch leaves neither a
// held lock nor anything that stops the next fetch.
func TestFetchSurvivesKilledProcess(t *testing.T) {
	t.Parallel()
	r, sha := bigRepo(t)
	stall, _, u := stallServer(t, "github.com/owner/big", r)
	stall.armed.Store(true)
	cacheDir := t.TempDir()
	dir, _ := RepoDir(cacheDir, u)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, _, stderr := startHelper(t, ctx, FetchRequest{CacheDir: cacheDir, URL: u, Commit: sha})
	select {
	case <-stall.started:
	case <-ctx.Done():
		t.Fatal("the helper never reached the pack")
	}
	if !waitFor(5*time.Second, func() bool { return len(partialPacks(dir)) > 0 }) {
		t.Fatal("no partial pack appeared")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("killed helper exited cleanly: %s", stderr)
	}

	stall.armed.Store(false)
	fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer fcancel()
	res, err := NewClient(Options{}).Fetch(fctx, FetchRequest{CacheDir: cacheDir, URL: u, Commit: sha})
	if err != nil || res.Path != PathSHA {
		t.Fatalf("fetch after the kill = %+v, %v", res, err)
	}
	assertCommitComplete(t, dir, sha)
	// The dead fetch's private repository may belong to a live process on
	// another host as far as anyone can tell, until its lease expires.
	if l := leftovers(t, dir); len(l) != 1 {
		t.Fatalf("leftovers right after the kill: %v, want the dead fetch's private repository", l)
	}
	time.Sleep(50 * time.Millisecond)
	c := NewClient(Options{Lease: cache.Lease{Refresh: time.Millisecond, Expiry: 40 * time.Millisecond}})
	if _, err := c.Fetch(fctx, FetchRequest{CacheDir: cacheDir, URL: u, Commit: r.Commit("more", map[string]string{"more.txt": "more\n"})}); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Fatalf("leftovers once their lease expired: %v", l)
	}
}
