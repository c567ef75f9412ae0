// Package redact hides credentials that users write into URLs
// (https://user:token@host/..., ?token=..., pre-signed ?X-Amz-Signature=...)
// before a URL reaches a log line, an error, a printed plan or a shared
// cache file. It works on any text, so an error message quoting a URL is
// cleaned as a whole.
package redact

import (
	"regexp"
	"strings"
)

// Mask replaces each secret.
const Mask = "REDACTED"

var (
	userinfoRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^/@\s?#"']+)@`)
	// Query parameters that carry credentials: Civitai's ?token=, API keys,
	// and the signatures of pre-signed CDN URLs (X-Amz-Signature, sig=, ...),
	// which work as short-lived credentials.
	secretParamRe = regexp.MustCompile(`([?&;][^=&#\s"']*(?i:token|key|sig|secret|passw|auth|credential)[^=&#\s"']*=)[^&#\s"']*`)
)

// URL returns s with the credentials of every URL in it replaced by Mask.
// User info is replaced whole for web URLs, where a token is often the
// user name; for ssh and git URLs only a password is, since a user name
// such as "git" is no secret and the URL stays recognisable.
func URL(s string) string {
	s = userinfoRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfoRe.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		if isSSH(scheme) {
			user, _, hasPass := strings.Cut(info, ":")
			if !hasPass {
				return m
			}
			return scheme + user + ":" + Mask + "@"
		}
		return scheme + Mask + "@"
	})
	return secretParamRe.ReplaceAllString(s, "${1}"+Mask)
}

// Has reports whether s holds a credential URL would hide.
func Has(s string) bool { return URL(s) != s }

func isSSH(scheme string) bool {
	switch strings.ToLower(strings.TrimSuffix(scheme, "://")) {
	case "ssh", "git", "git+ssh", "ssh+git":
		return true
	}
	return false
}
