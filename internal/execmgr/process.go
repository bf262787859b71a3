// Package execmgr holds the miner's executor managers: how an accepted job gets an executor.
// Process (the default) starts each executor as a child process of the miner,
// `horde executor serve`, upstream's run_executor.
package execmgr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/computehorde/horde/internal/miner"
)

// EnvToken is the variable that carries an executor's token to its process, out of process
// listings (upstream's EXECUTOR_TOKEN).
const EnvToken = "HORDE_EXECUTOR_TOKEN"

// DefaultStopGrace is how long a stopped executor gets to report and clean up before it is
// killed.
const DefaultStopGrace = 10 * time.Second

// Process starts each executor as `Binary executor serve --miner-url MinerURL Args…`, with
// the token in $HORDE_EXECUTOR_TOKEN. The child connects back to the miner, runs its one job
// and exits; Process reaps it. Close stops the children still running.
type Process struct {
	// Binary is the horde executable; empty means this process's own.
	Binary string
	// MinerURL is the miner's executor endpoint base as the child dials it, e.g.
	// ws://127.0.0.1:8000.
	MinerURL string
	// Args are extra flags of `executor serve` (work dir, egress, volume cap).
	Args []string
	// Env is added to the child's environment (the miner's own is inherited).
	Env []string
	// StopGrace is the wait between SIGTERM and SIGKILL at Close; 0 means DefaultStopGrace.
	StopGrace time.Duration
	Logger    *slog.Logger

	mu       sync.Mutex
	children map[*exec.Cmd]string // running child → job UUID
	closed   bool
	wg       sync.WaitGroup
}

var _ miner.ExecutorManager = (*Process)(nil)

// Start launches the executor of req and returns once it runs.
func (p *Process) Start(_ context.Context, req miner.ExecutorRequest) error {
	bin := p.Binary
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("execmgr: finding the horde executable to start executors: %w", err)
		}
		bin = self
	}
	log := p.logger().With("job", req.JobUUID, "class", req.ExecutorClass)
	// Not tied to the request's context: the executor outlives the message that asked
	// for it. Close stops it.
	cmd := exec.Command(bin, append([]string{"executor", "serve", "--miner-url", p.MinerURL}, p.Args...)...)
	cmd.Env = append(append(os.Environ(), p.Env...), EnvToken+"="+req.Token)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("execmgr: %w", err)
	}
	// Its own process group, so a Ctrl-C meant for the miner does not reach executors
	// before the miner has decided what to do with their jobs; but SIGTERM when the miner
	// dies (kill -9 included), so that no executor outlives it: the restarted miner fails
	// their jobs and sweeps their containers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("execmgr: the miner is stopping; no executor starts")
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("execmgr: starting %s executor serve: %w", bin, err)
	}
	if p.children == nil {
		p.children = map[*exec.Cmd]string{}
	}
	p.children[cmd] = req.JobUUID
	log.Info("executor started", "pid", cmd.Process.Pid)
	p.wg.Go(func() {
		relay(stderr, log)
		err := cmd.Wait()
		p.mu.Lock()
		delete(p.children, cmd)
		p.mu.Unlock()
		if err != nil {
			log.Warn("executor exited with an error", "err", err)
			return
		}
		log.Info("executor exited")
	})
	return nil
}

// relay logs the child's stderr line by line until it closes.
func relay(r io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		log.Info("executor: " + sc.Text())
	}
	_, _ = io.Copy(io.Discard, r) // a line too long ends the scanner; keep the pipe drained
}

// Kill stops the executor of job (SIGTERM to its process group); it is reaped as usual.
func (p *Process) Kill(_ context.Context, job string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for cmd, j := range p.children {
		if j == job {
			return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	return nil
}

// Running returns the number of executor processes still running.
func (p *Process) Running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.children)
}

// Close stops every executor still running: SIGTERM (the executor reports and removes its
// container), then SIGKILL after StopGrace; it returns once all are reaped.
func (p *Process) Close() error {
	p.mu.Lock()
	p.closed = true
	for cmd := range p.children {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	grace := p.StopGrace
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	}
	p.mu.Lock()
	n := len(p.children)
	for cmd := range p.children {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	<-done
	return fmt.Errorf("execmgr: %d executors did not stop within %v and were killed", n, grace)
}

func (p *Process) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}
