package netvol

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/internal/syncbuf"
)

// HostOptions describe one simulated host.
type HostOptions struct {
	// Shared is the directory every host sees: the network volume's
	// contents.
	Shared string
	// MountPath is where this host sees it, such as /runpod-volume. It is
	// created when missing. Hosts with the same MountPath each have their
	// own mount there; outside the hosts it stays an empty directory.
	MountPath string
	// Mount shapes this host's view (delays, bandwidth, caching).
	Mount Options
}

// Host is a helper process in its own mount namespace, serving its own
// FUSE view of the shared directory, in which commands run.
type Host struct {
	opts    HostOptions
	cmd     *exec.Cmd
	ns      string // the helper's mount namespace, as /proc/PID/ns/mnt names it
	control io.WriteCloser
	replies chan hostMsg
	output  syncbuf.Buffer // the helper's stdout and stderr, for errors

	exited   chan struct{} // closed once the helper is reaped
	waitErr  error
	readDone chan struct{}

	mu     sync.Mutex // one control request at a time
	nextID int

	closeOnce sync.Once
	closeErr  error
}

// hostConfig travels to the helper in the environment.
type hostConfig struct {
	Shared    string  `json:"shared"`
	MountPath string  `json:"mount_path"`
	Mount     Options `json:"mount"`
}

// hostMsg is one line the helper writes on its control pipe.
type hostMsg struct {
	Ready bool   `json:"ready,omitempty"`
	Error string `json:"error,omitempty"`
	ID    int    `json:"id,omitempty"`
	Stats *Stats `json:"stats,omitempty"`
}

// hostEnv carries the helper's configuration; its presence is what makes
// RunHostIfRequested take over the process.
const hostEnv = "NETVOL_HOST"

// hostStopGrace is how long Close waits for the helper to unmount.
const hostStopGrace = 15 * time.Second

// StartHost starts a host and returns once its view is mounted. ctx bounds
// the start only; the host runs until Close. The helper is this test
// binary run again, whose TestMain must call RunHostIfRequested.
func StartHost(ctx context.Context, o HostOptions) (*Host, error) {
	if _, ok := os.LookupEnv(hostEnv); ok {
		return nil, errors.New("netvol: StartHost ran inside a host helper: call netvol.RunHostIfRequested() first in TestMain")
	}
	if err := checkFUSE(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(o.Shared) || !filepath.IsAbs(o.MountPath) {
		return nil, fmt.Errorf("netvol: host paths must be absolute (shared %q, mount path %q)", o.Shared, o.MountPath)
	}
	if rel, err := filepath.Rel(o.Shared, o.MountPath); err == nil && !strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("netvol: mount path %s is inside the shared directory %s", o.MountPath, o.Shared)
	}
	if fi, err := os.Stat(o.Shared); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("netvol: shared directory %s: not a directory (%v)", o.Shared, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("netvol: find the test binary to run as host helper: %w", err)
	}
	cfg, err := json.Marshal(hostConfig{Shared: o.Shared, MountPath: o.MountPath, Mount: o.Mount})
	if err != nil {
		return nil, fmt.Errorf("netvol: host options: %w", err)
	}
	ctrlR, ctrlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("netvol: control pipe: %w", err)
	}

	h := &Host{opts: o, replies: make(chan hostMsg, 16), exited: make(chan struct{}), readDone: make(chan struct{})}
	// -test.run=^$ makes a test binary whose TestMain forgot
	// RunHostIfRequested run nothing and exit, instead of every test
	// again; the missing ready line then explains it.
	h.cmd = exec.Command(exe, "-test.run=^$")
	// A race-enabled helper would otherwise sleep a second on exit.
	h.cmd.Env = append(os.Environ(), hostEnv+"="+string(cfg), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	h.cmd.ExtraFiles = []*os.File{ctrlW}
	h.cmd.Stdout, h.cmd.Stderr = &h.output, &h.output
	h.cmd.SysProcAttr = &syscall.SysProcAttr{
		// Go also makes every mount in the new namespace private, so
		// the helper's mount does not show up in ours.
		Unshareflags: syscall.CLONE_NEWNS,
		Pdeathsig:    syscall.SIGKILL,
	}
	if h.control, err = h.cmd.StdinPipe(); err != nil {
		ctrlR.Close()
		ctrlW.Close()
		return nil, fmt.Errorf("netvol: host helper stdin: %w", err)
	}
	err = h.cmd.Start()
	ctrlW.Close()
	if err != nil {
		ctrlR.Close()
		return nil, fmt.Errorf("netvol: start host helper: %w", err)
	}
	go func() {
		defer close(h.exited)
		h.waitErr = h.cmd.Wait()
	}()
	go h.readControl(ctrlR)

	select {
	case m, ok := <-h.replies:
		switch {
		case !ok:
			err = fmt.Errorf("netvol: host helper exited before mounting; does the test's TestMain call netvol.RunHostIfRequested() first? Output: %s", h.outputTail())
		case m.Error != "":
			err = fmt.Errorf("netvol: host helper: %s", m.Error)
		case !m.Ready:
			err = errors.New("netvol: host helper answered out of turn")
		}
	case <-ctx.Done():
		err = fmt.Errorf("netvol: host helper did not mount in time: %w", ctx.Err())
	}
	if err == nil {
		err = h.checkNamespace()
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// HostT starts a host for the duration of t.
func HostT(t testing.TB, o HostOptions) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := StartHost(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A test that closed the host itself has seen the error.
		if first, err := h.close(); err != nil && first {
			t.Error(err)
		}
	})
	return h
}

// checkNamespace records the helper's mount namespace, making sure it is
// not ours: Close kills every process in it.
func (h *Host) checkNamespace() error {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", h.cmd.Process.Pid))
	if err != nil {
		return fmt.Errorf("netvol: host helper's namespace: %w", err)
	}
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("netvol: own mount namespace: %w", err)
	}
	if ns == own {
		return errors.New("netvol: host helper shares the test's mount namespace")
	}
	h.ns = ns
	return nil
}

func (h *Host) readControl(r *os.File) {
	defer close(h.readDone)
	defer close(h.replies)
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m hostMsg
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		select {
		case h.replies <- m:
		default: // only stale replies nobody waits for can fill it
		}
	}
}

// PID is the helper process's id; killing it simulates the host's crash.
func (h *Host) PID() int { return h.cmd.Process.Pid }

// MountPath is where this host sees the shared directory.
func (h *Host) MountPath() string { return h.opts.MountPath }

// Stats returns the counters of the host's mount.
func (h *Host) Stats(ctx context.Context) (Stats, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextID++
	id := h.nextID
	if _, err := fmt.Fprintf(h.control, "stats %d\n", id); err != nil {
		return Stats{}, fmt.Errorf("netvol: ask host for stats: %w", err)
	}
	for {
		select {
		case m, ok := <-h.replies:
			if !ok {
				return Stats{}, errors.New("netvol: host helper is gone")
			}
			if m.ID == id && m.Stats != nil {
				return *m.Stats, nil
			}
		case <-ctx.Done():
			return Stats{}, ctx.Err()
		}
	}
}

// Close kills the commands still running in the host, unmounts its view
// and reaps the helper. It reports a helper that failed to unmount or did
// not exit cleanly (one that was killed included).
func (h *Host) Close() error {
	_, err := h.close()
	return err
}

func (h *Host) close() (first bool, err error) {
	h.closeOnce.Do(func() { h.closeErr, first = h.shutdown(), true })
	return first, h.closeErr
}

func (h *Host) shutdown() error {
	if h.ns != "" {
		killNamespace(h.ns, h.cmd.Process.Pid)
	}
	h.control.Close() // the helper unmounts and exits on EOF
	var err error
	select {
	case <-h.exited:
	case <-time.After(hostStopGrace):
		h.cmd.Process.Kill()
		<-h.exited
		err = fmt.Errorf("netvol: host helper for %s did not stop within %v", h.opts.MountPath, hostStopGrace)
	}
	<-h.readDone
	if h.ns != "" {
		// Processes that entered while the helper stopped would keep the
		// namespace, and its dead mount, alive.
		killNamespace(h.ns, 0)
	}
	if err == nil && h.waitErr != nil {
		err = fmt.Errorf("netvol: host helper for %s: %w; output: %s", h.opts.MountPath, h.waitErr, h.outputTail())
	}
	return err
}

func (h *Host) outputTail() string {
	s := strings.TrimSpace(h.output.String())
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	if s == "" {
		return "(none)"
	}
	return s
}
