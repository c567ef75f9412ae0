package job

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runpod-comfy/worker/pkg/comfy"
)

// localCopy is a build's local copy being made (Build.Local) while the job
// fetches its inputs. The job owns the goroutine: take or drop always
// waits for it.
type localCopy struct {
	done    chan struct{}
	run     *Build
	release func()
	err     error
}

func startLocal(ctx context.Context, b *Build) *localCopy {
	lc := &localCopy{done: make(chan struct{})}
	go func() {
		defer close(lc.done)
		lc.run, lc.release, lc.err = b.Local(ctx)
	}()
	return lc
}

// take waits for the copy (stage "local": the time the job waited for it)
// and hands its release to the caller.
func (j *jobRun) takeLocal(lc *localCopy) (*Build, func(), error) {
	err := j.stage("local", func() error {
		<-lc.done
		return lc.err
	})
	if err != nil {
		return nil, nil, err
	}
	release := lc.release
	lc.release = nil
	return lc.run, release, nil
}

// drop waits for the copy and releases it unless it was taken.
func (lc *localCopy) drop() {
	<-lc.done
	if lc.release != nil {
		lc.release()
		lc.release = nil
	}
}

// readAhead reads the version's model files that the workflow names into
// the page cache, while the build is copied and ComfyUI starts: ComfyUI
// then loads them from memory instead of waiting on the volume. It reads
// at most half of the memory available, and stops when stop is called.
func (j *jobRun) readAhead(ctx context.Context, b *Build, wf comfy.Workflow) (stop func()) {
	if len(b.Models) == 0 || len(wf) == 0 {
		return func() {}
	}
	text, err := json.Marshal(wf)
	if err != nil {
		return func() {}
	}
	var files []string
	for _, p := range b.Models {
		// Workflows name a model by its path inside its folder: the file
		// name ends a JSON string.
		if bytes.Contains(text, []byte(filepath.Base(p)+`"`)) {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		n := readFiles(ctx, files, memAvailable()/2)
		j.log.Debug().Strs("files", files).Int64("bytes", n).Int64("took_ms", time.Since(start).Milliseconds()).Msg("models read ahead")
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// readFiles reads files in order, one sequential stream at a time (what a
// network volume does best), up to budget bytes.
func readFiles(ctx context.Context, files []string, budget int64) int64 {
	buf := make([]byte, 4<<20)
	var total int64
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		for ctx.Err() == nil && total < budget {
			n, err := f.Read(buf)
			total += int64(n)
			if err != nil {
				break
			}
		}
		f.Close()
		if ctx.Err() != nil || total >= budget {
			break
		}
	}
	return total
}

// memAvailable is the kernel's estimate of memory available without
// swapping; 1 GiB when unknown.
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 1 << 30
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<16))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 1 << 30
}
