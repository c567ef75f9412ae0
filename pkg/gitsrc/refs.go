package gitsrc

import (
	"sort"
	"strings"

	"github.com/rs/zerolog"
)

// Refs is one listing of a remote repository's refs, as `git ls-remote`
// prints them, with annotated tags peeled to the commit they point to.
type Refs struct {
	// URL is the repository as the caller wrote it, credentials redacted.
	URL string
	// Head is the commit HEAD points to; "" for an empty repository.
	Head string
	// HeadBranch is the branch HEAD points to ("main"); "" when HEAD is
	// detached or the server does not say.
	HeadBranch string
	// Branches maps branch names ("main", "feature/x") to commit SHAs.
	Branches map[string]string
	// Tags maps tag names ("v1.0") to commit SHAs; an annotated tag maps to
	// the commit it peels to, never to the tag object.
	Tags map[string]string
	// Other maps full names of refs outside refs/heads and refs/tags
	// ("refs/pull/1/head") to their (peeled) SHAs.
	Other map[string]string

	log zerolog.Logger
}

// Resolve maps ref to a 40-hex commit SHA using only this listing:
//
//   - "" or "HEAD": the commit HEAD points to;
//   - "refs/heads/x", "refs/tags/x", or any other full "refs/..." name;
//   - a 40-hex SHA: itself, lowercased (it need not be a ref tip);
//   - a short name: the branch of that name, else the tag. Branches win
//     because that is what `git clone --branch` and `git ls-remote <repo>
//     <name>` (refs/heads sorts before refs/tags, and the tool this project
//     replaces took the first line) do; git rev-parse's tags-first order
//     applies to local refs, not to remotes. When a branch and a tag share
//     the name and differ, a warning is logged; write refs/tags/x for the tag.
//   - 7 to 39 hex digits that are not a name: the one ref tip they prefix.
//
// Failures are *RefNotFoundError or *AmbiguousRefError.
func (r *Refs) Resolve(ref string) (string, error) {
	switch {
	case ref == "" || ref == "HEAD":
		if r.Head == "" {
			return "", r.notFound(ref, false)
		}
		return r.Head, nil
	case strings.HasPrefix(ref, "refs/"):
		if sha, ok := r.full(ref); ok {
			return sha, nil
		}
		return "", r.notFound(ref, false)
	case len(ref) == 40 && isHex(ref):
		return strings.ToLower(ref), nil
	}

	branch, isBranch := r.Branches[ref]
	tag, isTag := r.Tags[ref]
	switch {
	case isBranch && isTag && branch != tag:
		r.log.Warn().Str("url", r.URL).Str("ref", ref).Str("branch_sha", branch).Str("tag_sha", tag).
			Msg("ref names both a branch and a tag; using the branch (write refs/tags/" + ref + " for the tag)")
		return branch, nil
	case isBranch:
		return branch, nil
	case isTag:
		return tag, nil
	}

	if len(ref) >= 7 && len(ref) < 40 && isHex(ref) {
		return r.expand(ref)
	}
	return "", r.notFound(ref, false)
}

// full looks up a full ref name.
func (r *Refs) full(name string) (string, bool) {
	if b, ok := strings.CutPrefix(name, "refs/heads/"); ok {
		sha, found := r.Branches[b]
		return sha, found
	}
	if t, ok := strings.CutPrefix(name, "refs/tags/"); ok {
		sha, found := r.Tags[t]
		return sha, found
	}
	sha, found := r.Other[name]
	return sha, found
}

// expand finds the unique ref tip an abbreviated SHA prefixes. Several refs
// at the same commit are one match, not an ambiguity.
func (r *Refs) expand(abbrev string) (string, error) {
	prefix := strings.ToLower(abbrev)
	matches := map[string]string{} // sha -> first ref name seen, for messages
	add := func(name, sha string) {
		if strings.HasPrefix(sha, prefix) {
			if _, seen := matches[sha]; !seen {
				matches[sha] = name
			}
		}
	}
	add("HEAD", r.Head)
	for _, n := range sortedKeys(r.Branches) {
		add("refs/heads/"+n, r.Branches[n])
	}
	for _, n := range sortedKeys(r.Tags) {
		add("refs/tags/"+n, r.Tags[n])
	}
	for _, n := range sortedKeys(r.Other) {
		add(n, r.Other[n])
	}
	switch len(matches) {
	case 0:
		return "", r.notFound(abbrev, true)
	case 1:
		for sha := range matches {
			return sha, nil
		}
	}
	list := make([]string, 0, len(matches))
	for _, sha := range sortedKeys(matches) {
		list = append(list, sha+" ("+matches[sha]+")")
	}
	return "", &AmbiguousRefError{URL: r.URL, Ref: abbrev, Matches: list}
}

func (r *Refs) notFound(ref string, abbrev bool) *RefNotFoundError {
	e := &RefNotFoundError{
		URL:         r.URL,
		Ref:         ref,
		NumBranches: len(r.Branches),
		NumTags:     len(r.Tags),
		Abbrev:      abbrev,
	}
	branches := sortedKeys(r.Branches)
	if r.HeadBranch != "" {
		if _, ok := r.Branches[r.HeadBranch]; ok {
			rest := branches[:0:0]
			for _, b := range branches {
				if b != r.HeadBranch {
					rest = append(rest, b)
				}
			}
			branches = append([]string{r.HeadBranch}, rest...)
		}
	}
	tags := sortedKeys(r.Tags)
	sort.SliceStable(tags, func(i, j int) bool { return naturalLess(tags[j], tags[i]) })
	e.Branches = branches[:min(len(branches), maxListed)]
	e.Tags = tags[:min(len(tags), maxListed)]
	if !abbrev {
		short := strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")
		e.Suggestion = suggest(short, append(sortedKeys(r.Branches), sortedKeys(r.Tags)...))
	}
	return e
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
