package gitsrc

import (
	"strings"

	"github.com/runpod-comfy/worker/internal/textdist"
)

// naturalLess orders names with embedded numbers by value, so v1.10 sorts
// after v1.9 and "newest tags first" in messages means what users expect.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			na, ra := splitDigits(a)
			nb, rb := splitDigits(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func splitDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// suggest returns the one candidate closest to ref (case-insensitively, by
// edit distance with transpositions), if it is close enough to be a typo:
// "mian" -> "main", "Main" -> "main". Ties give no suggestion.
func suggest(ref string, candidates []string) string {
	if ref == "" {
		return ""
	}
	limit := max(1, min(2, len(ref)/3))
	best, bestDist, tie := "", limit+1, false
	lref := strings.ToLower(ref)
	for _, c := range candidates {
		if c == ref {
			continue
		}
		d := textdist.Distance(lref, strings.ToLower(c))
		switch {
		case d < bestDist:
			best, bestDist, tie = c, d, false
		case d == bestDist && c != best:
			tie = true
		}
	}
	if tie || bestDist > limit {
		return ""
	}
	return best
}
