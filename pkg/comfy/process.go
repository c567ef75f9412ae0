package comfy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/runpod-comfy/worker/internal/proc"
)

// drainTimeout bounds how long a dead process's output is still read: a
// descendant that escaped the process group may hold the pipe open forever.
const drainTimeout = 2 * time.Second

// process is one run of ComfyUI. Its goroutines (two output pumps and a
// waiter) all end once the process has exited and its output is drained.
type process struct {
	cmd     *exec.Cmd
	waitFn  func() error // proc.Start's: waits for the exit
	pgid    int
	book    *logBook
	baseURL string
	args    []string
	started time.Time

	// ctx is cancelled when the process exits, to abort readiness probes.
	ctx    context.Context
	cancel context.CancelFunc

	readyLine chan struct{}
	ready     atomic.Bool
	stopping  atomic.Bool

	pumps sync.WaitGroup
	pipes []*os.File

	done     chan struct{}
	exitErr  error
	exitCode int
	signal   string
}

// spawn starts `python main.py args...` in its own process group with its
// output pumped into the log book and logger.
func spawn(python, dir string, args, env []string, book *logBook, log zerolog.Logger) (*process, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	// Its own process group, and SIGKILL from the kernel if the worker
	// dies: ComfyUI and its custom nodes' helpers must not outlive it.
	// The process is stopped through its group (stop), not a context.
	cmd := proc.Command(context.Background(), python, append([]string{"main.py"}, args...)...)
	cmd.Dir = dir
	cmd.Env = env
	// Plain files, not io.Writers: Wait then never waits for copying
	// goroutines that a child holding the pipe would keep alive.
	cmd.Stdout, cmd.Stderr = outW, errW
	waitFn, err := proc.Start(cmd)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start ComfyUI (%s main.py in %s): %w", python, dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{
		cmd: cmd, waitFn: waitFn, pgid: cmd.Process.Pid, book: book, args: args, started: time.Now(),
		ctx: ctx, cancel: cancel,
		readyLine: make(chan struct{}, 1),
		pipes:     []*os.File{outR, errR},
		done:      make(chan struct{}),
	}
	p.pumps.Add(2)
	go p.pump(outR, log.With().Str("stream", "stdout").Logger())
	go p.pump(errR, log.With().Str("stream", "stderr").Logger())
	go p.wait(log)
	return p, nil
}

func (p *process) pump(f *os.File, log zerolog.Logger) {
	defer p.pumps.Done()
	pumpLines(f, func(line string) {
		p.book.add(line)
		ev := log.Info()
		if strings.Contains(line, "IMPORT FAILED") {
			ev = log.Warn()
		}
		ev.Msg(line)
		if strings.Contains(line, readyLine) {
			select {
			case p.readyLine <- struct{}{}:
			default:
			}
		}
	})
}

func (p *process) wait(log zerolog.Logger) {
	waitErr := p.waitFn()
	// Whatever ComfyUI started (custom node helpers) must not outlive it.
	p.killGroup(syscall.SIGKILL)
	drained := make(chan struct{})
	go func() {
		p.pumps.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		for _, f := range p.pipes {
			f.Close()
		}
		<-drained
	}
	for _, f := range p.pipes {
		f.Close()
	}

	p.exitCode = -1
	if st := p.cmd.ProcessState; st != nil {
		p.exitCode = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.signal = sigName(ws.Signal())
		}
	} else if waitErr != nil {
		log.Error().Err(waitErr).Msg("waiting for ComfyUI failed")
	}
	if p.stopping.Load() {
		p.exitErr = ErrStopped
	} else {
		p.exitErr = &CrashError{ExitCode: p.exitCode, Signal: p.signal, LogTail: p.book.tail(maxTailInError)}
	}
	ev := log.Info()
	if !p.stopping.Load() {
		ev = log.Error()
	}
	ev.Int("exit_code", p.exitCode).Str("signal", p.signal).Int64("uptime_ms", time.Since(p.started).Milliseconds()).Msg("ComfyUI exited")
	p.cancel()
	close(p.done)
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "killed"
	case syscall.SIGTERM:
		return "terminated"
	case syscall.SIGSEGV:
		return "segmentation fault"
	case syscall.SIGABRT:
		return "aborted"
	}
	return s.String()
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// killGroup signals ComfyUI and every process in its group.
func (p *process) killGroup(sig syscall.Signal) {
	if err := syscall.Kill(-p.pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		// The group could not be signalled (not gone, which is ESRCH):
		// at least reach ComfyUI itself.
		p.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM to the group, then SIGKILL after grace (or as soon as
// ctx ends), and waits for the exit.
func (p *process) stop(ctx context.Context, grace time.Duration, log zerolog.Logger) error {
	if p.exited() {
		return nil
	}
	p.stopping.Store(true)
	p.killGroup(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		log.Warn().Int64("grace_ms", grace.Milliseconds()).Msg("ComfyUI did not exit after SIGTERM; sending SIGKILL")
	case <-ctx.Done():
		log.Warn().Msg("stop cancelled; sending SIGKILL to ComfyUI")
	}
	p.killGroup(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(drainTimeout + 5*time.Second):
		return fmt.Errorf("ComfyUI (pid %d) did not exit after SIGKILL", p.pgid)
	}
}
