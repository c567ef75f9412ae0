package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/redact"
	"github.com/runpod-comfy/worker/pkg/spec"
)

// RefResolver turns a ref into a commit SHA by asking the remote. ref may
// be "" (the remote's HEAD), a branch or tag name, or a 7–39 hex
// abbreviation of a ref tip. gitsrc provides the real one.
type RefResolver interface {
	Resolve(ctx context.Context, repoURL, ref string) (string, error)
}

// Options tune Resolve.
type Options struct {
	// Update re-resolves every ref even when the previous lock has it.
	Update bool
	// Offline forbids network calls: entries the previous lock cannot
	// answer are an error.
	Offline bool
	// Jobs bounds concurrent remote listings (default 8).
	Jobs   int
	Logger zerolog.Logger
	// Now stamps the lock; tests fix it.
	Now func() time.Time
}

// Stats says how a lock was obtained.
type Stats struct {
	// Reused is true when the previous lock matched the spec and was
	// returned unchanged.
	Reused bool
	// Remote is the number of entries resolved over the network.
	Remote int
}

// OfflineError lists entries that need the network in offline mode.
type OfflineError struct {
	ID      string
	Entries []string
	NoLock  bool
}

func (e *OfflineError) Error() string {
	what := "the lock does not pin"
	if e.NoLock {
		what = "there is no lock yet, and these need resolving"
	}
	return fmt.Sprintf("offline: %s %s: %s; run `worker resolve %s` with network access first",
		e.ID, what, strings.Join(e.Entries, ", "), e.ID)
}

// Resolve builds the lock for s. prev is the existing lock, or nil. With
// an unchanged spec and no Update, prev is returned as is and nothing is
// asked of any remote; after an edit only entries that changed are
// resolved again.
func Resolve(ctx context.Context, s *spec.Spec, prev *Lock, r RefResolver, opts Options) (*Lock, Stats, error) {
	digest := s.Digest()
	dirty := false
	if prev != nil {
		if red, changed := prev.redacted(); changed {
			prev, dirty = red, true
		}
	}
	if prev != nil && !dirty && !opts.Update && prev.SpecDigest == digest && prev.VersionID == s.ID && prev.attach(s) {
		return prev, Stats{Reused: true}, nil
	}
	if opts.Offline && opts.Update {
		return nil, Stats{}, errors.New("--update needs the network: drop --offline")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	l := &Lock{
		SchemaVersion:  spec.SchemaVersion,
		VersionID:      s.ID,
		SpecDigest:     digest,
		PythonPackages: redactAll(s.PythonPackages),
		pkgs:           s.PythonPackages,
		Env:            s.Env,
		Options:        s.Options,
		SourceSpec:     s.File,
		ResolvedAt:     now().UTC().Truncate(time.Second),
	}
	if l.PythonPackages == nil {
		l.PythonPackages = []string{}
	}
	var prevNodes map[string]Repo
	var prevComfy *Repo
	if prev != nil {
		prevComfy = &prev.Comfy
		prevNodes = make(map[string]Repo, len(prev.CustomNodes))
		for _, n := range prev.CustomNodes {
			prevNodes[n.Name] = n.Repo
		}
	}

	// Every repo gets a task; those the spec or the previous lock answers
	// need no network.
	type task struct {
		label string
		want  spec.Repo
		out   *Repo
	}
	l.Comfy = Repo{}
	l.CustomNodes = make([]Node, len(s.CustomNodes))
	tasks := []task{{"comfy", s.Comfy, &l.Comfy}}
	for i, n := range s.CustomNodes {
		l.CustomNodes[i] = Node{Name: n.Name, Dir: n.Dir, InstallRequirements: s.NodeInstallsRequirements(n)}
		tasks = append(tasks, task{"custom node " + n.Name, n.Repo, &l.CustomNodes[i].Repo})
	}
	prevFor := func(i int) *Repo {
		if i == 0 {
			return prevComfy
		}
		if p, ok := prevNodes[s.CustomNodes[i-1].Name]; ok {
			return &p
		}
		return nil
	}
	var remote []int
	var offline []string
	for i, t := range tasks {
		*t.out = Repo{Repo: redact.URL(t.want.URL), Ref: t.want.Ref, SpecCommit: t.want.Commit, url: t.want.URL}
		p := prevFor(i)
		switch {
		case t.want.Pinned() && !(opts.Update && t.want.Ref != ""):
			t.out.Commit = t.want.Commit
		case !opts.Update && p != nil && p.Repo == t.out.Repo && p.Ref == t.want.Ref && p.SpecCommit == t.want.Commit && spec.IsFullSHA(p.Commit):
			t.out.Commit = p.Commit
		case opts.Offline:
			offline = append(offline, t.label)
		default:
			remote = append(remote, i)
		}
	}
	if len(offline) > 0 {
		return nil, Stats{}, &OfflineError{ID: s.ID, Entries: offline, NoLock: prev == nil}
	}

	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 8
	}
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	errs := make([]error, len(tasks))
	for _, i := range remote {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			t := tasks[i]
			ref := t.want.Ref
			if t.want.Commit != "" && !(opts.Update && ref != "") {
				ref = t.want.Commit // an abbreviation to expand
			}
			sha, err := r.Resolve(ctx, t.want.URL, ref)
			if err != nil {
				errs[i] = fmt.Errorf("resolve %s: %w", t.label, err)
				return
			}
			if t.want.Pinned() && sha != t.want.Commit {
				opts.Logger.Info().Str("entry", t.label).Str("spec_commit", t.want.Commit).Str("ref", ref).Str("commit", sha).
					Msg("--update: the ref moved past the commit the spec pins")
			}
			t.out.Commit = sha
			opts.Logger.Debug().Str("entry", t.label).Str("ref", refLabel(ref)).Str("commit", sha).Msg("resolved")
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, Stats{}, fmt.Errorf("resolve %s: %w", s.ID, err)
	}
	l.Models = lockModels(s, prev)
	return l, Stats{Remote: len(remote)}, nil
}

func refLabel(ref string) string {
	if ref == "" {
		return "HEAD"
	}
	return ref
}

// lockModels carries digests learned on earlier downloads over to the new
// lock, as long as the model still has the same target and sources.
func lockModels(s *spec.Spec, prev *Lock) []Model {
	out := make([]Model, 0, len(s.Models))
	for _, m := range s.Models {
		lm := Model{
			Name:         m.Name,
			Source:       redact.URL(m.Source()),
			TargetSubdir: m.TargetSubdir,
			TargetPath:   m.Target.String(),
			SHA256:       m.SHA256,
			Size:         m.Size,
			fetch:        slices.Clone(m.Sources),
		}
		if len(m.Sources) > 1 {
			lm.Sources = redactAll(m.Sources)
		}
		if lm.SHA256 != "" {
			lm.DigestFrom = "spec"
		} else if prev != nil {
			if pm := prev.Model(lm.TargetPath); pm != nil && pm.Source == lm.Source && pm.DigestFrom == "download" && sameSources(pm.Sources, lm.Sources) {
				lm.SHA256, lm.Size, lm.DigestFrom = pm.SHA256, pm.Size, pm.DigestFrom
			}
		}
		out = append(out, lm)
	}
	return out
}

func sameSources(a, b []string) bool { return slices.Equal(a, b) }
