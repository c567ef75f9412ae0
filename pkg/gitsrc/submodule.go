package gitsrc

import (
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// fillSubmodules fetches and writes every gitlink of a tree, as `git clone
// --recurse-submodules` would: the URL and branch come from .gitmodules at
// the same commit.
func (x *exporter) fillSubmodules(tree *object.Tree, links []gitlink, dir, prefix, url string, depth int) error {
	sm := x.opts.Submodules
	if sm.Fetcher == nil {
		x.log.Warn().Int("count", len(links)).Str("path", prefixOrRoot(prefix)).
			Msg("submodules left empty: no fetcher configured")
		return nil
	}
	if depth >= sm.MaxDepth {
		return fmt.Errorf("submodule %s: nested more than %d levels deep", path.Join(prefix, links[0].path), sm.MaxDepth)
	}
	byPath, err := readGitmodules(tree)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Join(prefix, ".gitmodules"), err)
	}
	for _, l := range links {
		display := path.Join(prefix, l.path)
		m := byPath[l.path]
		if m == nil || m.URL == "" {
			// Repositories often hold a stray gitlink from a nested clone
			// added by mistake; git skips those too.
			x.log.Warn().Str("path", display).Msg("submodule has no URL in .gitmodules; left empty")
			continue
		}
		subURL, err := resolveSubmoduleURL(url, m.URL)
		if err != nil {
			return fmt.Errorf("submodule %s: %w", display, err)
		}
		if isLocalURL(subURL) && !isLocalURL(url) && !sm.AllowLocal {
			return fmt.Errorf("submodule %s: local URL %s refused in a remote repository "+
				"(a repository must not make the worker copy local files; allow it in the submodule options if intended)",
				display, RedactURL(subURL))
		}
		branch := m.Branch
		if branch == "." {
			branch = "" // "same as the superproject": we only know HEAD
		}
		res, err := sm.Fetcher.Fetch(x.ctx, FetchRequest{CacheDir: sm.CacheDir, URL: subURL, Commit: l.hash.String(), Ref: branch})
		if err != nil {
			return fmt.Errorf("submodule %s: %w", display, err)
		}
		sub := filepath.Join(dir, filepath.FromSlash(l.path))
		if err := x.writeCommit(res.RepoDir, l.hash, sub, display, subURL, depth+1); err != nil {
			return fmt.Errorf("submodule %s: %w", display, err)
		}
		x.submodules++
	}
	return nil
}

func prefixOrRoot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// readGitmodules maps submodule paths to their .gitmodules entries.
func readGitmodules(tree *object.Tree) (map[string]*config.Submodule, error) {
	f, err := tree.File(".gitmodules")
	if errors.Is(err, object.ErrFileNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	_ = r.Close()
	if err != nil {
		return nil, err
	}
	mods := config.NewModules()
	if err := mods.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	byPath := make(map[string]*config.Submodule, len(mods.Submodules))
	for _, m := range mods.Submodules {
		byPath[path.Clean(strings.TrimSuffix(m.Path, "/"))] = m
	}
	return byPath, nil
}

// resolveSubmoduleURL resolves a .gitmodules URL against the URL of the
// repository that holds it, as git does: "./x" is below it and each "../"
// drops one path segment ("../lib.git" next to ".../owner/app" is
// ".../owner/lib.git"). Other URLs are returned as they are.
func resolveSubmoduleURL(parent, sub string) (string, error) {
	if strings.HasPrefix(sub, "-") {
		return "", fmt.Errorf("submodule URL %q looks like an option", sub)
	}
	if !strings.HasPrefix(sub, "./") && !strings.HasPrefix(sub, "../") {
		return sub, nil
	}
	if parent == "" {
		return "", fmt.Errorf("relative submodule URL %q needs the repository's own URL", sub)
	}
	base := strings.TrimRight(parent, "/")
	var fixed, p string // fixed is never cut: scheme and host
	switch {
	case strings.Contains(base, "://"):
		i := strings.Index(base, "://") + 3
		j := strings.Index(base[i:], "/")
		if j < 0 {
			fixed, p = base, ""
		} else {
			fixed, p = base[:i+j], base[i+j:]
		}
	case !strings.HasPrefix(base, "/") && scpLike.MatchString(base):
		colon := strings.Index(base, ":")
		fixed, p = base[:colon+1], base[colon+1:]
	default:
		p = base
	}
	rel := sub
	for {
		switch {
		case strings.HasPrefix(rel, "./"):
			rel = rel[2:]
		case strings.HasPrefix(rel, "../"):
			rel = rel[3:]
			i := strings.LastIndex(p, "/")
			if i < 0 {
				if p == "" {
					return "", fmt.Errorf("relative submodule URL %q climbs above %s", sub, RedactURL(parent))
				}
				i = 0
			}
			p = p[:i]
		default:
			if p == "" && strings.HasSuffix(fixed, ":") {
				return fixed + rel, nil // scp-like "host:" + "repo"
			}
			return fixed + p + "/" + rel, nil
		}
	}
}

// isLocalURL reports whether a repository URL names the local file system.
func isLocalURL(u string) bool {
	host, _, err := splitRepoURL(u)
	return err == nil && host == "file"
}
