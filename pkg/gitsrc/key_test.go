package gitsrc

import (
	"strings"
	"testing"
)

func TestRepoKey(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"https://github.com/comfyanonymous/ComfyUI", "github.com/comfyanonymous/ComfyUI"},
		{"https://github.com/comfyanonymous/ComfyUI.git", "github.com/comfyanonymous/ComfyUI"},
		{"https://github.com/comfyanonymous/ComfyUI/", "github.com/comfyanonymous/ComfyUI"},
		{"https://github.com/comfyanonymous/ComfyUI.git/", "github.com/comfyanonymous/ComfyUI"},
		{"  https://GitHub.COM/owner/repo  ", "github.com/owner/repo"},
		{"https://user:tok@github.com/owner/repo", "github.com/owner/repo"},
		{"https://ghp_secret@github.com/owner/repo", "github.com/owner/repo"},
		{"https://github.com:443/owner/repo", "github.com/owner/repo"},
		{"http://127.0.0.1:8080/github.com/owner/repo", "127.0.0.1_8080/github.com/owner/repo"},
		{"https://gitlab.com/group/sub/repo.git", "gitlab.com/group/sub/repo"},
		{"git@github.com:owner/repo.git", "github.com/owner/repo"},
		{"github.com:owner/repo", "github.com/owner/repo"},
		{"ssh://git@github.com/owner/repo.git", "github.com/owner/repo"},
		{"ssh://git@host.example:2222/owner/repo", "host.example_2222/owner/repo"},
		{"git://host.example/owner/repo", "host.example/owner/repo"},
		{"file:///srv/git/repo.git", "file/srv/git/repo"},
		{"file:///srv/git/repo/.git", "file/srv/git/repo"},
		{"file:///srv/git/my%20repo", "file/srv/git/my%20repo"},
		{"/srv/git/repo/", "file/srv/git/repo"},
		{"https://host/owner/we~ird:name", "host/owner/we%7Eird%3Aname"},
		{"https://host/a%2Fb/c", "host/a%2Fb/c"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := RepoKey(tt.url)
			if err != nil || got != tt.want {
				t.Fatalf("RepoKey(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
			}
		})
	}
}

// Forks and same-named repos on different hosts must never share a key.
func TestRepoKeyNoCollisions(t *testing.T) {
	urls := []string{
		"https://github.com/alice/ComfyUI-Foo",
		"https://github.com/bob/ComfyUI-Foo",
		"https://gitlab.com/alice/ComfyUI-Foo",
		"https://github.com/alice/sub/ComfyUI-Foo",
		"http://127.0.0.1:1/alice/ComfyUI-Foo",
		"http://127.0.0.1:2/alice/ComfyUI-Foo",
		"file:///alice/ComfyUI-Foo",
		"https://host/a b",
		"https://host/a_b",
		"https://host/a%2Fb",
		"https://host/a/b",
	}
	seen := map[string]string{}
	for _, u := range urls {
		k, err := RepoKey(u)
		if err != nil {
			t.Fatalf("RepoKey(%q): %v", u, err)
		}
		if prev, dup := seen[k]; dup {
			t.Fatalf("%q and %q share key %q", prev, u, k)
		}
		seen[k] = u
	}
}

func TestRepoKeyErrors(t *testing.T) {
	tests := []string{
		"",
		"https://github.com",
		"https://github.com/",
		"relative/path",
		"https://host/owner/../repo",
		"https:///owner/repo",
		"https://user:s3cr3t@host/a/../b",
		"https://us er:s3cr3t@host name/x",
	}
	for _, u := range tests {
		t.Run(u, func(t *testing.T) {
			k, err := RepoKey(u)
			if err == nil {
				t.Fatalf("RepoKey(%q) = %q, want an error", u, k)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestRepoName(t *testing.T) {
	tests := map[string]string{
		"https://github.com/kijai/ComfyUI-WanVideoWrapper":     "ComfyUI-WanVideoWrapper",
		"https://github.com/kijai/ComfyUI-WanVideoWrapper.git": "ComfyUI-WanVideoWrapper",
		"https://github.com/kijai/ComfyUI-WanVideoWrapper/":    "ComfyUI-WanVideoWrapper",
		"git@github.com:owner/repo.git":                        "repo",
		"file:///srv/repo/.git":                                "repo",
		"/srv/nodes/was-node-suite-comfyui":                    "was-node-suite-comfyui",
		"https://github.com":                                   "",
		"not a url":                                            "",
	}
	for in, want := range tests {
		if got := RepoName(in); got != want {
			t.Errorf("RepoName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRewriteURL(t *testing.T) {
	rules := []Rewrite{
		{From: "https://github.com/", To: "http://mirror/gh/"},
		{From: "https://github.com/special/", To: "http://special/"},
		{From: "", To: "http://never/"},
	}
	tests := map[string]string{
		"https://github.com/o/r":         "http://mirror/gh/o/r",
		"https://github.com/special/r":   "http://special/r", // longest From wins
		"https://gitlab.com/o/r":         "https://gitlab.com/o/r",
		"https://github.com.evil.com/o/": "https://github.com.evil.com/o/",
	}
	for in, want := range tests {
		if got := rewriteURL(rules, in); got != want {
			t.Errorf("rewriteURL(%q) = %q, want %q", in, got, want)
		}
	}
	// Applied once, like git: a To that matches another From is not chained.
	chain := []Rewrite{{From: "a://", To: "b://"}, {From: "b://", To: "c://"}}
	if got := rewriteURL(chain, "a://x"); got != "b://x" {
		t.Errorf("chained rewrite = %q, want b://x", got)
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"https://user:tok@github.com/o/r":   "https://***@github.com/o/r",
		"https://ghp_abc@github.com/o/r":    "https://***@github.com/o/r",
		"https://github.com/o/r":            "https://github.com/o/r",
		"ssh://git@github.com/o/r":          "ssh://git@github.com/o/r",
		"ssh://git:pw@github.com/o/r":       "ssh://git:***@github.com/o/r",
		"git@github.com:o/r.git":            "git@github.com:o/r.git",
		"https://us er:p w@bad host/x":      "https://***@bad host/x",
		"file:///srv/repo":                  "file:///srv/repo",
		"http://x-access-token:t@127.0.0.1": "http://***@127.0.0.1",
	}
	for in, want := range tests {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
