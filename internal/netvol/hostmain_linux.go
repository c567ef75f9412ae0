package netvol

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RunHostIfRequested turns this process into a host helper when StartHost
// started it, and never returns then; otherwise it returns at once. Call
// it first in TestMain of every test package that starts hosts.
func RunHostIfRequested() {
	cfg, ok := os.LookupEnv(hostEnv)
	if !ok {
		return
	}
	os.Exit(serveHost(cfg))
}

// serveHost mounts the host's view and serves it until its parent closes
// stdin (or dies, which closes it too). Fd 3 carries the answers.
func serveHost(cfg string) int {
	control := os.NewFile(3, "netvol-control")
	enc := json.NewEncoder(control)
	fail := func(err error) int {
		if enc.Encode(hostMsg{Error: err.Error()}) != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		return 1
	}
	var c hostConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		return fail(fmt.Errorf("read host options: %w", err))
	}
	// Mounting in the parent's namespace would put the view on the
	// machine's tree for everyone; refuse if the unshare did not happen.
	own, err1 := os.Readlink("/proc/self/ns/mnt")
	parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	if err := errors.Join(err1, err2); err != nil {
		return fail(fmt.Errorf("compare mount namespaces: %w", err))
	}
	if own == parent {
		return fail(errors.New("the helper is not in a mount namespace of its own"))
	}
	if err := os.MkdirAll(c.MountPath, 0o755); err != nil {
		return fail(fmt.Errorf("create mount point: %w", err))
	}
	v, err := Mount(context.Background(), c.Shared, c.MountPath, c.Mount)
	if err != nil {
		return fail(err)
	}
	if err := enc.Encode(hostMsg{Ready: true}); err != nil {
		v.Close()
		return 1
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "stats" {
			id, _ := strconv.Atoi(f[1])
			s := v.Stats()
			if enc.Encode(hostMsg{ID: id, Stats: &s}) != nil {
				break
			}
		}
	}
	if err := v.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
