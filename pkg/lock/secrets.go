package lock

import (
	"slices"

	"github.com/runpod-comfy/worker/internal/redact"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// Credentials that users write into the URLs of a spec (a ?token= on a
// model source, user:password@ on a repository or a pip index) stay in the
// spec, the user's own file. The lock is a shared cache file, so it stores
// every URL redacted; the real URLs ride along in memory, in unexported
// fields that Resolve fills from the spec, and only realize reads them
// (FetchSources, FetchURL, FetchPackages). Realize always goes through
// Resolve, which has the spec, so nothing is lost; a token that changes
// leaves the lock (and the digests it learned) as it was.

// FetchURL is the URL to fetch the repository from: the spec's, with its
// credentials, when Resolve saw it; else the lock's (redacted) URL.
func (r Repo) FetchURL() string {
	if r.url != "" {
		return r.url
	}
	return r.Repo
}

// FetchSources are the model's sources in the order to try them, with the
// spec's credentials when Resolve saw them.
func (m Model) FetchSources() []string {
	if len(m.fetch) > 0 {
		return m.fetch
	}
	if len(m.Sources) > 0 {
		return m.Sources
	}
	return []string{m.Source}
}

// FetchPackages are the python_packages with the spec's credentials (a
// private index URL), for the install itself.
func (l *Lock) FetchPackages() []string {
	if l.pkgs != nil {
		return l.pkgs
	}
	return l.PythonPackages
}

func redactAll(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = redact.URL(s)
	}
	return out
}

// redacted returns a copy of l with every URL redacted, and whether
// anything changed: a lock written before locks were redacted still holds
// credentials and must be written again.
func (l *Lock) redacted() (*Lock, bool) {
	c := *l
	changed := false
	fix := func(s *string) {
		if r := redact.URL(*s); r != *s {
			*s, changed = r, true
		}
	}
	fix(&c.Comfy.Repo)
	c.CustomNodes = slices.Clone(l.CustomNodes)
	for i := range c.CustomNodes {
		fix(&c.CustomNodes[i].Repo.Repo)
	}
	c.Models = slices.Clone(l.Models)
	for i := range c.Models {
		m := &c.Models[i]
		fix(&m.Source)
		m.Sources = slices.Clone(m.Sources)
		for j := range m.Sources {
			fix(&m.Sources[j])
		}
	}
	c.PythonPackages = slices.Clone(l.PythonPackages)
	for i := range c.PythonPackages {
		fix(&c.PythonPackages[i])
	}
	return &c, changed
}

// attach gives a lock read from disk the spec's real URLs. It reports
// false when the lock does not match the spec entry for entry, so the
// caller resolves afresh instead of fetching from a redacted URL.
func (l *Lock) attach(s *spec.Spec) bool {
	if l.Comfy.Repo != redact.URL(s.Comfy.URL) || len(l.CustomNodes) != len(s.CustomNodes) ||
		len(l.Models) != len(s.Models) || !slices.Equal(l.PythonPackages, redactAll(s.PythonPackages)) {
		return false
	}
	for i, n := range s.CustomNodes {
		if l.CustomNodes[i].Name != n.Name || l.CustomNodes[i].Repo.Repo != redact.URL(n.URL) {
			return false
		}
	}
	for i, m := range s.Models {
		lm := &l.Models[i]
		if lm.TargetPath != m.Target.String() || !slices.Equal(lm.FetchSources(), redactAll(m.Sources)) {
			return false
		}
	}
	l.Comfy.url = s.Comfy.URL
	for i, n := range s.CustomNodes {
		l.CustomNodes[i].Repo.url = n.URL
	}
	for i, m := range s.Models {
		l.Models[i].fetch = slices.Clone(m.Sources)
	}
	l.pkgs = slices.Clone(s.PythonPackages)
	return true
}
