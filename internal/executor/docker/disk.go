package docker

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/computehorde/horde/internal/executor"
)

// diskWatch is the watchdog of one Wait: it polls the job's disk use and kills the container
// once it passes the cap.
type diskWatch struct {
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
	exceeded atomic.Bool
}

// watchDisk starts the watchdog of container cid; stop ends it.
func (r *Runtime) watchDisk(ctx context.Context, ws executor.Workspace, cid string, limit int64) *diskWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &diskWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(r.opts.DiskPollInterval)
		defer t.Stop()
		upper, resolved := "", false // the writable layer's directory, looked up once
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !resolved {
				if info, err := r.cli.ContainerInspect(ctx, cid); err == nil {
					upper, resolved = upperDir(info), true
				}
			}
			used := r.diskUsage(ctx, ws, cid, upper)
			if used <= limit || ctx.Err() != nil {
				continue
			}
			// Set before the kill, so Wait sees it once the container has exited.
			w.exceeded.Store(true)
			r.log.Warn("job exceeded its disk limit; killing it", "container", shortID(cid), "used_bytes", used, "limit_bytes", limit)
			if err := r.kill(cid); err != nil {
				r.log.Error("kill of a job over its disk limit failed", "container", shortID(cid), "err", err)
			}
			return
		}
	}()
	return w
}

// stop ends the watchdog, waits for it, and says whether it killed the job for passing the
// cap. It is idempotent.
func (w *diskWatch) stop() (exceeded bool) {
	w.once.Do(func() {
		w.cancel()
		<-w.done
	})
	return w.exceeded.Load()
}

// diskUsage is what the job has written: the bytes under its output and artifacts directories
// plus its container's writable layer. The layer is measured by walking upper, its directory,
// when known: asking the engine for SizeRw instead costs about 16 ms of its time per call here.
// Without it the engine is asked, and when that fails too the layer is left out.
func (r *Runtime) diskUsage(ctx context.Context, ws executor.Workspace, cid, upper string) int64 {
	total := dirBytes(ws.OutputDir) + dirBytes(ws.ArtifactsDir)
	if upper != "" {
		return total + dirBytes(upper)
	}
	info, _, err := r.cli.ContainerInspectWithRaw(ctx, cid, true)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("writable layer size unknown; counting the job directories only", "container", shortID(cid), "err", err)
		}
		return total
	}
	if info.SizeRw != nil {
		total += *info.SizeRw
	}
	return total
}

// upperDir is the container's writable layer directory if the engine reports one (overlay
// drivers) and this process can read it (executor on the engine's host); "" otherwise.
func upperDir(info container.InspectResponse) string {
	dir := info.GraphDriver.Data["UpperDir"]
	if dir == "" {
		return ""
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return ""
	}
	return dir
}

// dirBytes sums the sizes of the regular files under dir. It never follows a symlink (Lstat
// sizes only) and skips what vanishes or cannot be read during the walk.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // vanished or unreadable entries are skipped; the rest still counts
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}
