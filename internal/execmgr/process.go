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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
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

	// Classes is how many executors of each class run at once (the manifest). Each executor
	// of a GPU class gets its own GPUs of this machine (AssignGPUs). Empty means no
	// assignment: GPU jobs get every GPU, right only for a single GPU executor.
	Classes map[protocol.ExecutorClass]int
	// HostGPUs is this machine's GPU count; 0 means GPUDetector counts them.
	HostGPUs int
	// GPUDetector lists this machine's GPUs when HostGPUs is 0; nil means gpu.NvidiaSMI{}.
	GPUDetector gpu.Detector
	// Registry gives each class's GPU count; nil means hwclass.Default().
	Registry *hwclass.Registry

	assignMu sync.Mutex
	assigned bool // AssignGPUs succeeded

	mu       sync.Mutex
	children map[*exec.Cmd]string // running child → job UUID
	closed   bool
	wg       sync.WaitGroup
	gpus     *gpuSlots     // set by AssignGPUs; nil: no executor gets devices
	freed    chan struct{} // closed (and replaced) when a GPU slot frees
}

// AssignGPUs counts this machine's GPUs (HostGPUs, else GPUDetector) and gives each executor
// slot of a GPU class in Classes its own; executors of more GPUs than the machine has are an
// error naming the class and the counts. Call it at start, so that such a configuration
// fails there rather than at the first GPU job; Start calls it otherwise.
func (p *Process) AssignGPUs(ctx context.Context) error {
	p.assignMu.Lock()
	defer p.assignMu.Unlock()
	if p.assigned || len(p.Classes) == 0 {
		return nil
	}
	n, detectErr := p.HostGPUs, error(nil)
	if n <= 0 && p.needsGPUs() {
		det := p.GPUDetector
		if det == nil {
			det = gpu.NvidiaSMI{}
		}
		var list []gpu.GPU
		list, detectErr = det.GPUs(ctx)
		n = len(list)
	}
	setCount := "set executors.gpus to this machine's GPU count"
	switch {
	case detectErr != nil:
		setCount = fmt.Sprintf("listing the GPUs failed (%v); fix nvidia-smi or %s", detectErr, setCount)
	case p.HostGPUs <= 0:
		setCount = "nvidia-smi found none (is the NVIDIA driver installed?); " + setCount
	}
	plan, err := planGPUs("this machine", p.Classes, p.Registry, n, setCount)
	if err != nil {
		return err
	}
	if plan == nil && p.needsGPUs() {
		why := "nvidia-smi found no GPUs"
		if detectErr != nil {
			why = detectErr.Error()
		}
		p.logger().Warn("this machine's GPU count is unknown: its one GPU executor gets every GPU; set executors.gpus", "why", why)
	}
	p.mu.Lock()
	p.gpus = newGPUSlots(plan)
	p.mu.Unlock()
	p.assigned = true
	return nil
}

// needsGPUs says whether Classes offers a GPU class.
func (p *Process) needsGPUs() bool {
	reg := p.Registry
	if reg == nil {
		reg = hwclass.Default()
	}
	for class, n := range p.Classes {
		if c, err := reg.Lookup(class); n > 0 && err == nil && c.HasGPU {
			return true
		}
	}
	return false
}

// takeGPUs waits for a free GPU slot of class (the executor of a job that just ended may still
// be removing its container) until ctx ends; slot -1 means the class gets no devices.
func (p *Process) takeGPUs(ctx context.Context, class protocol.ExecutorClass) (int, []string, error) {
	if err := p.AssignGPUs(ctx); err != nil {
		return -1, nil, err
	}
	for {
		p.mu.Lock()
		if !p.gpus.assigned(class) {
			p.mu.Unlock()
			return -1, nil, nil
		}
		if p.closed {
			p.mu.Unlock()
			return -1, nil, errors.New("execmgr: the miner is stopping; no executor starts")
		}
		if slot, devices := p.gpus.take(class); slot >= 0 {
			p.mu.Unlock()
			return slot, devices, nil
		}
		if p.freed == nil {
			p.freed = make(chan struct{})
		}
		freed := p.freed
		p.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return -1, nil, fmt.Errorf("execmgr: every executor of class %s still holds its GPUs: %w", class, ctx.Err())
		}
	}
}

// freeGPUsLocked frees a slot that takeGPUs gave and wakes the Starts waiting for one.
func (p *Process) freeGPUsLocked(class protocol.ExecutorClass, slot int) {
	if slot < 0 {
		return
	}
	p.gpus.free(class, slot)
	if p.freed != nil {
		close(p.freed)
		p.freed = nil
	}
}

var _ miner.ExecutorManager = (*Process)(nil)

// Start launches the executor of req and returns once it runs.
//
// An executor of a GPU class gets the GPUs of a free slot of its class (`executor serve
// --gpus`); when every slot is still held, Start waits for one until ctx ends.
func (p *Process) Start(ctx context.Context, req miner.ExecutorRequest) error {
	bin := p.Binary
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("execmgr: finding the horde executable to start executors: %w", err)
		}
		bin = self
	}
	log := p.logger().With("job", req.JobUUID, "class", req.ExecutorClass)
	slot, devices, err := p.takeGPUs(ctx, req.ExecutorClass)
	if err != nil {
		return err
	}
	started := false
	defer func() {
		if !started {
			p.mu.Lock()
			p.freeGPUsLocked(req.ExecutorClass, slot)
			p.mu.Unlock()
		}
	}()
	args := append([]string{"executor", "serve", "--miner-url", p.MinerURL}, p.Args...)
	if len(devices) > 0 {
		args = append(args, "--gpus", strings.Join(devices, ","))
		log = log.With("gpus", strings.Join(devices, ","))
	}
	// Not tied to the request's context: the executor outlives the message that asked
	// for it. Close stops it.
	cmd := exec.Command(bin, args...)
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
	started = true
	log.Info("executor started", "pid", cmd.Process.Pid)
	p.wg.Go(func() {
		relay(stderr, log)
		err := cmd.Wait()
		p.mu.Lock()
		delete(p.children, cmd)
		// Its job's container is gone with it: the GPUs are free for the next executor.
		p.freeGPUsLocked(req.ExecutorClass, slot)
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
	if p.freed != nil {
		close(p.freed) // Starts waiting for GPUs give up
		p.freed = nil
	}
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
