package multihost

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/realize/realizetest"
)

// TestHostsRealizeOneFreshVersion: 2 and 4 hosts, whose locks do not see
// each other, realize one fresh version (3 nodes, 3 models, a venv) at the
// same moment, round after round. Every realize succeeds, every build is
// file for file the one a realize alone makes, every model holds its
// bytes, and a later realize on one host alone finds nothing to do. It
// logs the figures: duplicated downloads, time alone and raced.
func TestHostsRealizeOneFreshVersion(t *testing.T) {
	const rounds = 10
	v := newVolume(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	v.round("clean", "v")
	alone := run(v.worker(ctx, 0, "clean", "realize", "v"))
	if alone.err != nil {
		t.Fatalf("realize alone: %s", alone)
	}
	want := realizetest.Manifest(t, v.build("clean", "v"))
	v.checkModels("clean", v.build("clean", "v"))
	oneCopy := v.downloads()

	for _, hosts := range []int{2, 4} {
		var failures, dups, worst int
		var raced, racedSum time.Duration
		for r := range rounds {
			round := fmt.Sprintf("h%d-r%d", hosts, r)
			v.round(round, "v")
			before := v.downloads()
			cmds := make([]*exec.Cmd, hosts)
			for i := range cmds {
				cmds[i] = v.worker(ctx, i, round, "realize", "v")
			}
			res := together(cmds)
			var slowest time.Duration
			for i, rr := range res {
				if rr.err != nil {
					failures++
					t.Errorf("%s, host %d: %s", round, i, rr)
				}
				slowest = max(slowest, rr.took)
			}
			raced, racedSum = max(raced, slowest), racedSum+slowest
			n := v.downloads() - before - oneCopy
			dups += n
			worst = max(worst, n)
			if failures > 0 {
				continue
			}
			build := v.build(round, "v")
			if d := realizetest.DiffManifest(realizetest.Manifest(t, build), want); d != "" {
				t.Errorf("%s: the build differs from a clean one: %s", round, d)
			}
			v.checkModels(round, build)
			if again := run(v.worker(ctx, r%hosts, round, "realize", "v")); again.err != nil || !strings.Contains(again.out, "already complete") {
				t.Errorf("%s: a realize alone after the race: %s", round, again)
			}
		}
		t.Logf("%d hosts, %d rounds: %d failures; duplicated downloads: %.1f per race (worst %d; %d models); realize alone %v, raced (slowest host) %v on average, %v at worst",
			hosts, rounds, failures, float64(dups)/rounds, worst, len(v.modelSize), alone.took.Round(time.Millisecond),
			(racedSum / rounds).Round(time.Millisecond), raced.Round(time.Millisecond))
	}
}
