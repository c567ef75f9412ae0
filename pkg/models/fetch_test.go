package models

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/models/modeltest"
)

func TestFetchHTTPAndCacheHit(t *testing.T) {
	srv := modeltest.NewServer()
	defer srv.Close()
	data, digest := testData(3<<20+17, 1)
	srv.Add("/m.safetensors", data)
	env := newTestStore(t, nil)
	ctx := testCtx(t)

	b, err := env.st.Fetch(ctx, Request{Source: srv.Path("m.safetensors")})
	if err != nil {
		t.Fatal(err)
	}
	if b.SHA256 != digest || b.Size != int64(len(data)) || !b.Downloaded {
		t.Fatalf("blob = %+v, want digest %s size %d downloaded", b, digest, len(data))
	}
	if !bytes.Equal(mustReadFile(t, b.Path), data) {
		t.Fatal("blob content differs from the served file")
	}
	if got := storeFiles(t, env.st, "partial"); len(got) != 0 {
		t.Errorf("partial files left behind: %v", got)
	}
	n := len(srv.Requests(""))
	evs := env.events.all()
	last := evs[len(evs)-1]
	if last.Task != "download" || last.Item != "m.safetensors" || !last.Finished || last.Done != int64(len(data)) || last.Message != "downloaded" {
		t.Errorf("last progress event = %+v", last)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Done < evs[i-1].Done {
			t.Errorf("progress went backwards: %+v then %+v", evs[i-1], evs[i])
		}
	}

	// Without a digest the source index answers; with one the blob does.
	for _, req := range []Request{{Source: srv.Path("m.safetensors")}, {Source: "https://unreachable.invalid/x", SHA256: "sha256:" + digest}} {
		hit, err := env.st.Fetch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if hit.Downloaded || hit.SHA256 != digest || hit.Path != b.Path {
			t.Errorf("cache hit = %+v", hit)
		}
	}
	if got := len(srv.Requests("")); got != n {
		t.Errorf("cache hits made %d requests", got-n)
	}
	if _, ok, _ := env.st.Lookup(Request{Source: srv.Path("m.safetensors")}); !ok {
		t.Error("Lookup misses a fetched model")
	}
}

func TestFetchFaults(t *testing.T) {
	data, digest := testData(2<<20, 2)
	const size = 2 << 20
	tests := []struct {
		name    string
		faults  []modeltest.Fault
		sha     string
		size    int64
		wantErr func(error) bool
		// checks on what the server saw
		wantRequests int
		wantRanges   []string
	}{
		{name: "drop mid-body resumes with Range", faults: []modeltest.Fault{{DropAfter: 700_000}},
			sha: digest, wantRequests: 2, wantRanges: []string{"", "bytes=700000-"}},
		{name: "two drops", faults: []modeltest.Fault{{DropAfter: 100_000}, {DropAfter: 200_000}},
			wantRequests: 3, wantRanges: []string{"", "bytes=100000-", "bytes=300000-"}},
		{name: "500s are retried", faults: []modeltest.Fault{{Status: 500}, {Status: 503}},
			sha: digest, wantRequests: 3},
		{name: "server without Range restarts from 0", faults: []modeltest.Fault{{DropAfter: 500_000}, {NoRange: true}},
			// A dropped connection (RST) may discard bytes the client had
			// not read yet: the resume asks from whatever reached the disk.
			sha: digest, wantRequests: 2, wantRanges: []string{"", "bytes=*"}},
		{name: "stalled body hits the idle timeout and resumes",
			faults: []modeltest.Fault{{StallAfter: 300_000, Stall: 10 * time.Second}}, sha: digest,
			wantRequests: 2, wantRanges: []string{"", "bytes=300000-"}},
		{name: "wrong bytes fail the checksum", faults: []modeltest.Fault{{Corrupt: true}}, sha: digest,
			wantErr:      func(err error) bool { var ce *ChecksumError; return errors.As(err, &ce) && ce.Want == digest },
			wantRequests: 1},
		{name: "wrong bytes after a resume: one fresh download", faults: []modeltest.Fault{{DropAfter: 100_000}, {Corrupt: true}},
			sha: digest, wantRequests: 3, wantRanges: []string{"", "bytes=100000-", ""}},
		{name: "404 is not retried", faults: []modeltest.Fault{{Status: 404}},
			wantErr: func(err error) bool {
				var he *HTTPError
				return errors.As(err, &he) && he.StatusCode == 404 && strings.Contains(err.Error(), "not found: check the URL")
			}, wantRequests: 1},
		{name: "endless 503 gives up", faults: []modeltest.Fault{{Status: 503}, {Status: 503}, {Status: 503}, {Status: 503}, {Status: 503}},
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "giving up after 4 attempts") }, wantRequests: 4},
		{name: "login page is refused", faults: []modeltest.Fault{{HTML: true}},
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "HTML page") }, wantRequests: 1},
		{name: "size from the lock differs", size: size + 1,
			wantErr: func(err error) bool {
				var se *SizeError
				return errors.As(err, &se) && se.Want == size+1 && se.Got == size
			}, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := modeltest.NewServer()
			defer srv.Close()
			srv.Add("/f", data)
			srv.Faults("/f", tt.faults...)
			env := newTestStore(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
			target := t.TempDir() + "/loras/f.safetensors"
			b, err := env.st.Fetch(testCtx(t), Request{Source: srv.Path("f"), SHA256: tt.sha, Size: tt.size})
			if err == nil {
				err = Place(b, target)
			}
			reqs := srv.Requests("/f")
			if len(reqs) != tt.wantRequests {
				t.Errorf("server saw %d requests, want %d: %+v", len(reqs), tt.wantRequests, reqs)
			}
			for i, r := range tt.wantRanges {
				if prefix, ok := strings.CutSuffix(r, "*"); ok && i < len(reqs) && strings.HasPrefix(reqs[i].Range, prefix) && reqs[i].Range != "bytes=0-" {
					continue
				}
				if i < len(reqs) && reqs[i].Range != r {
					t.Errorf("request %d Range = %q, want %q", i, reqs[i].Range, r)
				}
			}
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				if got := storeFiles(t, env.st, "sha256"); len(got) != 0 {
					t.Errorf("blobs after a failure: %v", got)
				}
				if fileExists(target) {
					t.Error("target placed after a failure")
				}
				var ce *ChecksumError
				if errors.As(err, &ce) {
					if got := storeFiles(t, env.st, "partial"); len(got) != 0 {
						t.Errorf("partial files after a checksum mismatch: %v", got)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := digest
			if b.SHA256 != want || sha256hex(mustReadFile(t, target)) != want {
				t.Fatalf("digest %s, placed %s, want %s", b.SHA256, sha256hex(mustReadFile(t, target)), want)
			}
			if got := storeFiles(t, env.st, "partial"); len(got) != 0 {
				t.Errorf("partial files left behind: %v", got)
			}
		})
	}
}

// A partial download from an earlier run must not be spliced with a newer
// version of the file: If-Range makes the server send the whole new file.
// With direct I/O (a local disk) the resume starts at the partial file's
// last 4 kB boundary, so the rest can be written directly.
func TestResumeAfterUpstreamChange(t *testing.T) {
	for _, buffered := range []bool{true, false} {
		t.Run(fmt.Sprintf("buffered=%v", buffered), func(t *testing.T) {
			srv := modeltest.NewServer()
			defer srv.Close()
			data, _ := testData(2<<20, 2)
			other, otherDigest := testData(2<<20, 3)
			srv.Add("/f", data)
			srv.Faults("/f", modeltest.Fault{DropAfter: 400_000}, modeltest.Fault{Status: 404})
			env := newTestStore(t, func(c *Config) { c.BufferedWrites = buffered })
			if _, err := env.st.Fetch(testCtx(t), Request{Source: srv.Path("f")}); err == nil {
				t.Fatal("want the 404")
			}
			if got := storeFiles(t, env.st, "partial"); len(got) == 0 {
				t.Fatal("the partial download was not kept for a resume")
			}
			srv.Add("/f", other)
			b, err := env.st.Fetch(testCtx(t), Request{Source: srv.Path("f")})
			if err != nil {
				t.Fatal(err)
			}
			if b.SHA256 != otherDigest {
				t.Fatalf("digest %s, want the new file's %s", b.SHA256, otherDigest)
			}
			from := 400_000
			if !buffered && onLocalDisk(t, env.root) {
				from -= from % directAlign
			}
			reqs := srv.Requests("/f")
			if last := reqs[len(reqs)-1]; last.Range != fmt.Sprintf("bytes=%d-", from) || last.IfRange == "" {
				t.Errorf("resume request %+v, want Range from %d with If-Range", last, from)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 50-99/*", 50, 99, -1, true},
		{"bytes */100", -1, -1, 100, true},
		{"bytes 50-100/100", 0, 0, 0, false}, // end past the size
		{"bytes 60-50/100", 0, 0, 0, false},
		{"bytes -1-5/100", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		s, e, total, ok := parseContentRange(tt.in)
		if ok != tt.ok || (ok && (s != tt.start || e != tt.end || total != tt.total)) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", tt.in, s, e, total, ok)
		}
	}
}
