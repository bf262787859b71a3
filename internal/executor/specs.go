package executor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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

// keepOutput copies the job's output directory to dest, and its artifacts directory (if any
// file is in it) to dest/artifacts. Symlinks and special files the job left are skipped: they
// could point anywhere on the host.
func keepOutput(ws Workspace, dest string) error {
	if err := copyTree(ws.OutputDir, dest); err != nil {
		return err
	}
	if ws.ArtifactsDir == "" {
		return nil
	}
	if entries, err := os.ReadDir(ws.ArtifactsDir); err != nil || len(entries) == 0 {
		return nil
	}
	return copyTree(ws.ArtifactsDir, filepath.Join(dest, "artifacts"))
}

func copyTree(src, dest string) error {
	root, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer root.Close()
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dest, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		in, err := root.Open(rel)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := out.ReadFrom(in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
