package executor

import (
	"context"
	"encoding/json"
	"time"

	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/hostinfo"
)

// specsCollector describes the host in the background from the start of the job (upstream
// collects machine specs first thing), so nvidia-smi's latency never adds to the job's time.
type specsCollector struct {
	cancel context.CancelFunc
	done   chan struct{}
	specs  json.RawMessage // set before done closes
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

// wait returns the specs, or nil if they are not ready within limit or ctx ends.
func (c *specsCollector) wait(ctx context.Context, limit time.Duration) json.RawMessage {
	if limit <= 0 {
		limit = time.Millisecond
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-c.done:
		return c.specs
	case <-ctx.Done():
	case <-t.C:
	}
	return nil
}

// gpuCount returns the number of GPUs the specs list (0 if unknown).
func (c *specsCollector) gpuCount(ctx context.Context) int {
	select {
	case <-c.done:
	case <-ctx.Done():
		return 0
	}
	var s struct {
		GPU struct {
			Count int `json:"count"`
		} `json:"gpu"`
	}
	if json.Unmarshal(c.specs, &s) != nil {
		return 0
	}
	return s.GPU.Count
}

// stop ends the collection and waits for its goroutine.
func (c *specsCollector) stop() {
	c.cancel()
	<-c.done
}
