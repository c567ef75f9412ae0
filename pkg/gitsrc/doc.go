// Package gitsrc is the project's door to remote git repositories: it lists
// and resolves refs without cloning (like `git ls-remote`), rewrites URLs to
// mirrors, and derives the collision-free cache key of a repository.
//
// All network access goes through go-git, so no git binary is needed for
// http(s) remotes; file:// remotes use git-upload-pack as git itself does.
package gitsrc
