package gitsrc

import "strings"

// Rewrite replaces a URL prefix before any network access, like git's
// `url.<To>.insteadOf <From>`: a URL starting with From is fetched from To
// plus the rest. It points github.com at a mirror, or at a local test server.
type Rewrite struct {
	From, To string
}

// rewriteURL applies the rule with the longest matching From (git's rule),
// once; rules with an empty From are ignored.
func rewriteURL(rules []Rewrite, rawURL string) string {
	best := -1
	for i, r := range rules {
		if r.From == "" || !strings.HasPrefix(rawURL, r.From) {
			continue
		}
		if best < 0 || len(r.From) > len(rules[best].From) {
			best = i
		}
	}
	if best < 0 {
		return rawURL
	}
	return rules[best].To + rawURL[len(rules[best].From):]
}
