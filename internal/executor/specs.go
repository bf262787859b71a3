package executor

import (
	"context"
	"slices"
	"strconv"
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

// ownedGPUs lists only the GPUs an executor owns, so that its machine specs (and the check that
// a GPU class has GPUs) describe what its jobs get, not the whole host.
type ownedGPUs struct {
	gpu.Detector
	ids []string // nvidia-smi indices or UUIDs
}

func (o ownedGPUs) GPUs(ctx context.Context) ([]gpu.GPU, error) {
	all, err := o.Detector.GPUs(ctx)
	if err != nil {
		return nil, err
	}
	var mine []gpu.GPU
	for i, g := range all {
		// nvidia-smi lists GPUs in index order, the numbering Docker's device IDs use.
		if slices.Contains(o.ids, strconv.Itoa(i)) || (g.UUID != "" && slices.Contains(o.ids, g.UUID)) {
			mine = append(mine, g)
		}
	}
	return mine, nil
}
