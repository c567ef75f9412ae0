package models

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/models/modeltest"
)

func TestConcurrentFetchInProcess(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, digest := testData(1<<20, 20)
	srv.Add("/m", data)
	srv.Throttle("/m", 8<<20)
	env := newTestStore(t, nil)
	ctx := testCtx(t)

	var wg sync.WaitGroup
	blobs := make([]Blob, 6)
	errs := make([]error, 6)
	for i := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			blobs[i], errs[i] = env.st.Fetch(ctx, Request{Source: srv.Path("m")})
		}()
	}
	wg.Wait()
	downloaded := 0
	for i := range blobs {
		if errs[i] != nil || blobs[i].SHA256 != digest {
			t.Fatalf("fetch %d: %+v, %v", i, blobs[i], errs[i])
		}
		if blobs[i].Downloaded {
			downloaded++
		}
	}
	if downloaded != 1 || len(srv.Requests("/m")) != 1 || srv.BytesServed("/m") != int64(len(data)) {
		t.Errorf("%d downloads, %d requests, %d bytes served; want the model downloaded once",
			downloaded, len(srv.Requests("/m")), srv.BytesServed("/m"))
	}
}

func startHelper(t *testing.T, root, source, sha string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = helperEnv(root, source, sha)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

func parseHelper(t *testing.T, out *bytes.Buffer) helperResult {
	t.Helper()
	var res helperResult
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok && json.Unmarshal([]byte(rest), &res) == nil {
			return res
		}
	}
	t.Fatalf("no result from the helper process:\n%s", out)
	return res
}

// N processes realizing the same models at once download each once and
// all succeed.
func TestConcurrentFetchProcesses(t *testing.T) {
	for _, withDigest := range []bool{false, true} {
		name := "trust on first use"
		if withDigest {
			name = "with checksum"
		}
		t.Run(name, func(t *testing.T) {
			srv := modeltest.NewServer()
			defer srv.Close()
			data, digest := testData(2<<20, 21)
			srv.Add("/m", data)
			srv.Throttle("/m", 2<<20) // about 1 s, so the processes overlap
			root := t.TempDir()
			sha := ""
			if withDigest {
				sha = digest
			}
			type proc struct {
				cmd *exec.Cmd
				out *bytes.Buffer
			}
			var procs []proc
			for range 3 {
				cmd, out := startHelper(t, root, srv.Path("m"), sha)
				procs = append(procs, proc{cmd, out})
			}
			downloaded, waited := 0, 0
			for i, p := range procs {
				if err := p.cmd.Wait(); err != nil {
					t.Fatalf("process %d: %v\n%s", i, err, p.out)
				}
				res := parseHelper(t, p.out)
				if res.Blob.SHA256 != digest {
					t.Fatalf("process %d got %+v", i, res)
				}
				if res.Blob.Downloaded {
					downloaded++
				}
				if strings.Contains(p.out.String(), "another process is fetching this model") {
					waited++
				}
			}
			if waited == 0 {
				t.Error("no process waited for another: the test did not exercise the lock")
			}
			if downloaded != 1 || srv.BytesServed("/m") != int64(len(data)) {
				t.Errorf("%d processes downloaded, %d bytes served for a %d-byte model", downloaded, srv.BytesServed("/m"), len(data))
			}
		})
	}
}

// kill -9 during a download, then a re-run: it resumes, and no partial
// file is ever visible at a final path.
func TestKill9Resume(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, digest := testData(4<<20, 22)
	srv.Add("/m", data)
	srv.Throttle("/m", 4<<20)
	root := t.TempDir()
	cmd, out := startHelper(t, root, srv.Path("m"), "")

	partDir := filepath.Join(root, "models", "partial")
	var partial int64
	deadline := time.Now().Add(20 * time.Second)
	for partial < 1<<20 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no partial download appeared:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
		parts, _ := filepath.Glob(filepath.Join(partDir, "*.part"))
		for _, p := range parts {
			if fi, err := os.Stat(p); err == nil {
				partial = fi.Size()
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if blobs, _ := os.ReadDir(filepath.Join(root, "models", "sha256")); len(blobs) != 0 {
		t.Fatalf("a blob is visible after kill -9: %v", blobs)
	}
	killedAt := srv.BytesServed("/m")

	// The killed download's lease expires (its writer no longer refreshes
	// it); only then may another process take its file over.
	lease := cache.Lease{Refresh: 50 * time.Millisecond, Expiry: 300 * time.Millisecond}
	time.Sleep(lease.Expiry + 100*time.Millisecond)
	st, err := New(Config{Root: root, BackoffBase: time.Millisecond, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "models-dir", "m.safetensors")
	b, err := st.Fetch(testCtx(t), Request{Source: srv.Path("m")})
	if err == nil {
		err = Place(b, target)
	}
	if err != nil {
		t.Fatal(err)
	}
	if b.SHA256 != digest || sha256hex(mustReadFile(t, target)) != digest {
		t.Fatalf("digest after resume %s, want %s", b.SHA256, digest)
	}
	reqs := srv.Requests("/m")
	last := reqs[len(reqs)-1]
	if !strings.HasPrefix(last.Range, "bytes=") || last.Range == "bytes=0-" {
		t.Errorf("the re-run did not resume: Range %q", last.Range)
	}
	if resumedBytes := srv.BytesServed("/m") - killedAt; resumedBytes >= int64(len(data)) {
		t.Errorf("the re-run downloaded %d bytes of %d", resumedBytes, len(data))
	}
	if parts, _ := filepath.Glob(filepath.Join(partDir, "*")); len(parts) != 0 {
		t.Errorf("partial files left: %v", parts)
	}
}
