package gitsrc

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels for listing failures a caller may want to treat specially (for
// example: not retrying). Test with errors.Is.
var (
	// ErrRepoNotFound: the server says the repository does not exist.
	ErrRepoNotFound = errors.New("repository not found")
	// ErrAuth: the server wants credentials, or refused the ones sent.
	ErrAuth = errors.New("authentication failed")
	// ErrOffline: the work needs the network and Options.Offline is set.
	ErrOffline = errors.New("offline mode allows no network access")
)

// maxListed caps how many branch and tag names an error message shows.
const maxListed = 8

// RefNotFoundError says a ref names nothing in a repository's listing.
type RefNotFoundError struct {
	// URL is the repository as the caller wrote it, credentials redacted.
	URL string
	// Ref is the ref that was asked for.
	Ref string
	// Branches and Tags are a few of the repository's names, shown to help:
	// the default branch first, then alphabetical; tags newest version first.
	Branches, Tags []string
	// NumBranches and NumTags count all of them.
	NumBranches, NumTags int
	// Suggestion is a close existing name ("main" for "mian"), if any.
	Suggestion string
	// Abbrev is set when Ref looked like an abbreviated commit SHA that
	// prefixes no branch or tag tip.
	Abbrev bool
}

func (e *RefNotFoundError) Error() string {
	if e.Abbrev {
		return fmt.Sprintf("%q is not the tip of any branch or tag in %s: write the full 40-hex commit SHA "+
			"(an abbreviation can only be expanded against ref tips)", e.Ref, e.URL)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ref %q not found in %s", displayRef(e.Ref), e.URL)
	if e.NumBranches == 0 && e.NumTags == 0 {
		b.WriteString(": the repository is empty (no branches or tags)")
		return b.String()
	}
	if e.Suggestion != "" {
		fmt.Fprintf(&b, " (did you mean %q?)", e.Suggestion)
	}
	b.WriteString("; available branches: ")
	b.WriteString(listNames(e.Branches, e.NumBranches))
	b.WriteString("; tags: ")
	b.WriteString(listNames(e.Tags, e.NumTags))
	return b.String()
}

func displayRef(ref string) string {
	if ref == "" {
		return "HEAD"
	}
	return ref
}

func listNames(shown []string, total int) string {
	if total == 0 {
		return "none"
	}
	s := strings.Join(shown, ", ")
	if more := total - len(shown); more > 0 {
		s += fmt.Sprintf(" (and %d more)", more)
	}
	return s
}

// AmbiguousRefError says an abbreviated SHA prefixes several different ref
// tips.
type AmbiguousRefError struct {
	// URL is the repository, credentials redacted.
	URL string
	// Ref is the abbreviation asked for.
	Ref string
	// Matches are "<sha> (<ref name>)" for each matching commit.
	Matches []string
}

func (e *AmbiguousRefError) Error() string {
	return fmt.Sprintf("abbreviated SHA %q is ambiguous in %s: it prefixes %s; write more hex digits or the full 40-hex SHA",
		e.Ref, e.URL, strings.Join(e.Matches, ", "))
}

// CommitNotFoundError says a repository does not have a commit: not by SHA,
// not behind the requested ref, not on any branch or tag.
type CommitNotFoundError struct {
	// URL is the repository, credentials redacted (and its rewritten form).
	URL string
	// Commit is the SHA asked for.
	Commit string
	// Ref is the ref whose history was searched ("" for HEAD).
	Ref string
}

func (e *CommitNotFoundError) Error() string {
	return fmt.Sprintf("commit %s not found in %s (searched %s and every branch and tag): "+
		"was it force-pushed away? pin a commit that is on a branch or tag", e.Commit, e.URL, displayRef(e.Ref))
}
