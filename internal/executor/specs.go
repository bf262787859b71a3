package executor

import (
	"context"
	"time"

	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/hostinfo"
)

// specsCollector describes the host in the background from the start of the job (upstream
// collects machine specs first thing), so nvidia-smi's latency never adds to the job's time.
type specsCollector struct {
	cancel context.CancelFunc
	done   chan struct{}
	specs  hostinfo.Specs // set before done closes
}

func collectSpecs(ctx context.Context, gpus gpu.Detector, disk string) *specsCollector {
	ctx, cancel := context.WithCancel(ctx)
	c := &specsCollector{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.specs = hostinfo.Collect(ctx, gpus, disk)
	}()
	return c
}

// wait returns the specs, or false if they are not ready within limit or ctx ends.
func (c *specsCollector) wait(ctx context.Context, limit time.Duration) (hostinfo.Specs, bool) {
	if limit <= 0 {
		limit = time.Millisecond
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-c.done:
		return c.specs, true
	case <-ctx.Done():
	case <-t.C:
	}
	return hostinfo.Specs{}, false
}

// gpuCount waits for the specs and returns the number of GPUs they found (0 if ctx ends first).
func (c *specsCollector) gpuCount(ctx context.Context) int {
	select {
	case <-c.done:
	case <-ctx.Done():
		return 0
	}
	return c.specs.GPUCount()
}

// stop ends the collection and waits for its goroutine.
func (c *specsCollector) stop() {
	c.cancel()
	<-c.done
}
