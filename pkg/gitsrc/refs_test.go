package gitsrc

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

const (
	shaMain  = "1111111111111111111111111111111111111111"
	shaDev   = "2222222222222222222222222222222222222222"
	shaTag   = "3333333333333333333333333333333333333333"
	shaClash = "abcdef0123456789abcdef0123456789abcdef01"
	shaNear  = "abcdef0999999999999999999999999999999999"
	shaPull  = "4444444444444444444444444444444444444444"
)

func sampleRefs(log zerolog.Logger) *Refs {
	return &Refs{
		URL:        "https://github.com/o/r",
		Head:       shaMain,
		HeadBranch: "main",
		Branches: map[string]string{
			"main": shaMain, "dev": shaDev, "same": shaTag, "both": shaDev,
			"feature/x": shaClash, "1234567": shaDev,
		},
		Tags: map[string]string{
			"v1.0": shaTag, "same": shaTag, "both": shaTag, "v1.2": shaNear, "v1.10": shaMain,
		},
		Other: map[string]string{"refs/pull/7/head": shaPull},
		log:   log,
	}
}

func TestRefsResolve(t *testing.T) {
	tests := []struct {
		ref  string
		want string
	}{
		{"", shaMain},
		{"HEAD", shaMain},
		{"main", shaMain},
		{"dev", shaDev},
		{"feature/x", shaClash},
		{"v1.0", shaTag},
		{"refs/heads/dev", shaDev},
		{"refs/tags/v1.0", shaTag},
		{"refs/tags/both", shaTag}, // the full name reaches the tag a short name hides
		{"both", shaDev},           // branch first
		{"same", shaTag},
		{"refs/pull/7/head", shaPull},
		{strings.ToUpper(shaDev[:39]) + "2", shaDev}, // 40 hex: itself, lowercased
		{"9999999999999999999999999999999999999999", "9999999999999999999999999999999999999999"}, // need not be a tip
		{"2222222", shaDev},    // abbreviation of a tip (dev, both, 1234567 all agree)
		{"ABCDEF01", shaClash}, // case-insensitive, unique
		{"4444444", shaPull},   // other refs count
		{"1234567", shaDev},    // a name that looks like hex is a name first
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := sampleRefs(zerolog.Nop()).Resolve(tt.ref)
			if err != nil || got != tt.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
			}
		})
	}
}

func TestRefsResolveBranchTagClashIsLogged(t *testing.T) {
	var buf bytes.Buffer
	refs := sampleRefs(zerolog.New(&buf))
	if _, err := refs.Resolve("both"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "both a branch and a tag") || !strings.Contains(buf.String(), "refs/tags/both") {
		t.Fatalf("no warning about the clash: %q", buf.String())
	}
	buf.Reset()
	if _, err := refs.Resolve("same"); err != nil || buf.Len() != 0 {
		t.Fatalf("branch and tag at one commit should not warn: %q, %v", buf.String(), err)
	}
}

func TestRefsResolveErrors(t *testing.T) {
	tests := []struct {
		name      string
		refs      *Refs
		ref       string
		abbrev    bool
		ambiguous bool
		contains  []string
	}{
		{
			name: "typo", refs: sampleRefs(zerolog.Nop()), ref: "mian",
			contains: []string{`ref "mian" not found in https://github.com/o/r`, `(did you mean "main"?); available`,
				"available branches: main, 1234567, both, dev, feature/x, same; tags: v1.10, v1.2, v1.0, same, both"},
		},
		{
			name: "case", refs: sampleRefs(zerolog.Nop()), ref: "Main",
			contains: []string{`(did you mean "main"?); available`},
		},
		{
			name: "unknown full name", refs: sampleRefs(zerolog.Nop()), ref: "refs/heads/nope",
			contains: []string{`ref "refs/heads/nope" not found`},
		},
		{
			name: "short hex is a name", refs: sampleRefs(zerolog.Nop()), ref: "abc12",
			contains: []string{`ref "abc12" not found`},
		},
		{
			name: "abbrev of no tip", refs: sampleRefs(zerolog.Nop()), ref: "deadbeef", abbrev: true,
			contains: []string{`"deadbeef" is not the tip of any branch or tag in https://github.com/o/r`, "full 40-hex"},
		},
		{
			name: "ambiguous abbrev", refs: sampleRefs(zerolog.Nop()), ref: "abcdef0", ambiguous: true,
			contains: []string{"ambiguous", shaClash + " (refs/heads/feature/x)", shaNear + " (refs/tags/v1.2)", "full 40-hex"},
		},
		{
			name: "empty repository", ref: "HEAD",
			refs:     &Refs{URL: "file:///x", Branches: map[string]string{}, Tags: map[string]string{}},
			contains: []string{`ref "HEAD" not found in file:///x: the repository is empty`},
		},
		{
			name: "many names are capped", ref: "nope",
			refs: func() *Refs {
				r := &Refs{URL: "u", Branches: map[string]string{}, Tags: map[string]string{}}
				for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
					r.Branches[n] = shaMain
				}
				return r
			}(),
			contains: []string{"available branches: a, b, c, d, e, f, g, h (and 2 more); tags: none"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sha, err := tt.refs.Resolve(tt.ref)
			if err == nil {
				t.Fatalf("Resolve(%q) = %q, want an error", tt.ref, sha)
			}
			var nf *RefNotFoundError
			var amb *AmbiguousRefError
			switch {
			case tt.ambiguous:
				if !errors.As(err, &amb) || amb.Ref != tt.ref {
					t.Fatalf("error %T %v, want *AmbiguousRefError", err, err)
				}
			default:
				if !errors.As(err, &nf) || nf.Ref != tt.ref || nf.Abbrev != tt.abbrev {
					t.Fatalf("error %T %+v, want *RefNotFoundError{Abbrev:%v}", err, err, tt.abbrev)
				}
			}
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q\nlacks %q", err, c)
				}
			}
		})
	}
}

func TestNaturalLess(t *testing.T) {
	in := []string{"v1.10", "v1.2", "v1.9", "v2.0", "v1.0", "v1.0-rc1", "v01.3", "latest"}
	sort.Slice(in, func(i, j int) bool { return naturalLess(in[i], in[j]) })
	want := "latest v1.0 v1.0-rc1 v1.2 v01.3 v1.9 v1.10 v2.0"
	if got := strings.Join(in, " "); got != want {
		t.Fatalf("natural order = %q, want %q", got, want)
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"main", "master", "dev", "v1.0", "v1.1"}
	tests := map[string]string{
		"mian":    "main",
		"Main":    "main",
		"maste":   "master",
		"deve":    "dev",
		"v1.3":    "", // v1.0 and v1.1 tie
		"release": "",
		"x":       "",
	}
	for ref, want := range tests {
		if got := suggest(ref, cands); got != want {
			t.Errorf("suggest(%q) = %q, want %q", ref, got, want)
		}
	}
}
