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
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			used := r.diskUsage(ctx, ws, cid, true)
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
// plus its container's writable layer. The layer is measured by walking its upper directory when
// the engine names one this process can read (overlay drivers, executor on the engine's host):
// asking the engine for SizeRw instead costs about 16 ms of its time per call here. Without it,
// the engine is asked (only when askEngine is set: the last check after the job's exit skips
// it, the polls while it ran having asked), and when that fails too the layer is left out.
func (r *Runtime) diskUsage(ctx context.Context, ws executor.Workspace, cid string, askEngine bool) int64 {
	total := dirBytes(ws.OutputDir) + dirBytes(ws.ArtifactsDir)
	info, _, err := r.cli.ContainerInspectWithRaw(ctx, cid, false)
	if err == nil {
		if n, ok := upperDirBytes(info); ok {
			return total + n
		}
		if !askEngine {
			return total
		}
		info, _, err = r.cli.ContainerInspectWithRaw(ctx, cid, true)
	}
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

// upperDirBytes measures the container's writable layer from its overlay upper directory, if
// the engine reports one and it can be read from here.
func upperDirBytes(info container.InspectResponse) (int64, bool) {
	if info.GraphDriver.Data == nil {
		return 0, false
	}
	dir := info.GraphDriver.Data["UpperDir"]
	if dir == "" {
		return 0, false
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return 0, false
	}
	return dirBytes(dir), true
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
