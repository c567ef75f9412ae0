package cache

import (
	"os"
	"path/filepath"
	"time"

	"github.com/runpod-comfy/worker/internal/fsutil"
)

// Lease is the timing of the leases that replace locks across hosts. A
// writer of a private entry on the volume (a build being made, a partial
// download, a fetch's private repository) refreshes its modification time
// every Refresh while it lives; an entry untouched for Expiry is abandoned,
// and any process may claim it (rename it to its own private name) or
// delete it. Expiry leaves room for a slow volume's attribute caching and
// for clocks that differ a little between hosts.
type Lease struct {
	Refresh time.Duration
	Expiry  time.Duration
}

// DefaultLease is the lease timing of the worker.
var DefaultLease = Lease{Refresh: 20 * time.Second, Expiry: 3 * time.Minute}

// OrDefault fills zero fields from DefaultLease.
func (l Lease) OrDefault() Lease {
	if l.Refresh <= 0 {
		l.Refresh = DefaultLease.Refresh
	}
	if l.Expiry <= 0 {
		l.Expiry = DefaultLease.Expiry
	}
	if l.Refresh >= l.Expiry {
		l.Refresh = l.Expiry / 4
	}
	return l
}

// RemoveStaleTemps removes the private temp files in dir (see
// fsutil.TempPath) that nothing touched for age: what writers killed in the
// middle of an atomic write left. A younger one may be a live write on
// another host. It returns what it removed, or would remove with dryRun.
func RemoveStaleTemps(dir string, age time.Duration, dryRun bool) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	now := time.Now()
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Type().IsRegular() && fsutil.IsTempName(e.Name()) && fsutil.Abandoned(p, age, now) {
			if dryRun || os.Remove(p) == nil {
				out = append(out, p)
			}
		}
	}
	return out
}
