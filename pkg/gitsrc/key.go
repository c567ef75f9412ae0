package gitsrc

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// defaultPorts are dropped from keys so https://github.com:443/o/r and
// https://github.com/o/r share one cache entry.
var defaultPorts = map[string]string{"http": "80", "https": "443", "ssh": "22", "git": "9418"}

// scpLike matches git's "[user@]host:path" syntax (git@github.com:o/r.git).
// A one-letter host is left alone: git reads "c:/x" as a local path too.
var scpLike = regexp.MustCompile(`^(?:[^@/:]+@)?([^@/:]{2,}):(.+)$`)

// RepoKey returns the cache key of a repository URL: "host/owner/repo" for a
// remote (host lowercased, a non-default port kept as "host_port", userinfo
// and a trailing ".git" or "/" dropped, every path segment kept so forks and
// nested groups never collide) and "file/<path>" for a local repository.
// Characters outside [A-Za-z0-9._-] in a segment are %XX-escaped, so a key is
// always a safe relative path.
//
// Key the URL as the user wrote it, before Rewrite rules: a mirror serves
// the same objects, so it shares the cache entry.
func RepoKey(rawURL string) (string, error) {
	host, segs, err := splitRepoURL(rawURL)
	if err != nil {
		return "", err
	}
	if len(segs) == 0 {
		return "", fmt.Errorf("cache key for %s: the URL has no repository path (want e.g. https://github.com/owner/repo)", RedactURL(rawURL))
	}
	parts := make([]string, 0, len(segs)+1)
	parts = append(parts, escapeSegment(host))
	for _, s := range segs {
		if s == "." || s == ".." {
			return "", fmt.Errorf("cache key for %s: path segment %q is not allowed", RedactURL(rawURL), s)
		}
		parts = append(parts, escapeSegment(s))
	}
	return strings.Join(parts, "/"), nil
}

// RepoName returns the last path segment of a repository URL without
// ".git" (the default custom-node folder name), or "" when there is none.
func RepoName(rawURL string) string {
	_, segs, err := splitRepoURL(rawURL)
	if err != nil || len(segs) == 0 {
		return ""
	}
	return segs[len(segs)-1]
}

// splitRepoURL parses the URL forms git accepts into a key host ("file" for
// local repositories) and the non-empty path segments, with ".git" removed
// from the last one (and a trailing "/.git" segment dropped).
func splitRepoURL(rawURL string) (host string, segs []string, err error) {
	s := strings.TrimSpace(rawURL)
	var p string
	escaped := false
	switch {
	case s == "":
		return "", nil, fmt.Errorf("empty repository URL")
	case strings.Contains(s, "://"):
		u, perr := url.Parse(s)
		if perr != nil {
			// url.Error repeats the raw URL, token included; keep only
			// the reason.
			var ue *url.Error
			if errors.As(perr, &ue) {
				perr = ue.Err
			}
			return "", nil, fmt.Errorf("parse repository URL %s: %w", RedactURL(s), perr)
		}
		scheme := strings.ToLower(u.Scheme)
		// Split the escaped form so an escaped "/" stays inside its segment.
		p, escaped = u.EscapedPath(), true
		if scheme == "file" {
			host = "file"
			break
		}
		host = strings.ToLower(u.Hostname())
		if host == "" {
			return "", nil, fmt.Errorf("repository URL %s has no host", RedactURL(s))
		}
		if port := u.Port(); port != "" && port != defaultPorts[scheme] {
			host += "_" + port
		}
	case strings.HasPrefix(s, "/"):
		host, p = "file", s
	default:
		m := scpLike.FindStringSubmatch(s)
		if m == nil {
			return "", nil, fmt.Errorf("unsupported repository URL %q: want https://host/owner/repo, git@host:owner/repo or an absolute path", RedactURL(s))
		}
		host, p = strings.ToLower(m[1]), m[2]
	}

	for _, seg := range strings.Split(p, "/") {
		if escaped {
			if seg, err = url.PathUnescape(seg); err != nil {
				return "", nil, fmt.Errorf("repository URL %s: %w", RedactURL(s), err)
			}
		}
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	if n := len(segs); n > 0 && segs[n-1] == ".git" {
		segs = segs[:n-1] // file:///path/repo/.git names the repo itself
	}
	if n := len(segs); n > 0 {
		segs[n-1] = strings.TrimSuffix(segs[n-1], ".git")
		if segs[n-1] == "" {
			segs = segs[:n-1]
		}
	}
	return host, segs, nil
}

// escapeSegment keeps portable file-name characters and %XX-escapes the
// rest, so distinct segments stay distinct and no segment contains a
// separator.
func escapeSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
