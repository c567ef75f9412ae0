package main

import (
	"github.com/runpod-comfy/worker/pkg/cache"
	"github.com/runpod-comfy/worker/pkg/gitsrc"
	"github.com/runpod-comfy/worker/pkg/realize"
)

// trees gives realize the commits' trees from the shared git cache.
func (a *app) trees(layout cache.Layout, offline bool) realize.Trees {
	return &gitsrc.Trees{Client: a.gitClient(offline), CacheDir: layout.Git(), Logger: a.log}
}

func (a *app) gitClient(offline bool) *gitsrc.Client {
	return gitsrc.NewClient(gitsrc.Options{Rewrites: a.cfg.GitRewrites, Logger: a.log, Offline: offline})
}
