// Package gitsrc is the project's door to remote git repositories: it lists
// and resolves refs without cloning (like `git ls-remote`), rewrites URLs to
// mirrors, derives the collision-free cache key of a repository, fetches
// pinned commits into a shared cache of bare repositories, and exports a
// commit's tree as an immutable snapshot (no .git, submodules filled in).
//
// The cache holds one bare repository per remote, <cache>/<RepoKey>.git,
// with one ref per fetched commit under refs/pins/. Hosts sharing the cache
// on a network volume need no lock: a fetch fills a private repository and
// publishes its packs and the pin into the shared one by renames, and
// nothing there is ever rewritten (see publish.go). A lock file beside each
// repository only makes fetches on one host take turns. Nothing in the
// cache or in an export refers to an absolute path, so a volume can be
// mounted anywhere.
//
// All network access goes through go-git, so no git binary is needed for
// http(s) remotes; file:// remotes use git-upload-pack as git itself does.
package gitsrc
