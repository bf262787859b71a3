package docker

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/computehorde/horde/internal/executor"
)

// The disk watchdog's schedule. A fixed poll let a job writing at full speed (gigabytes a
// second into the page cache) get several times past its cap between two polls; instead the
// next poll comes before a job writing at the fastest rate seen could reach the cap, so polls
// are sparse while a job is far below it and a few milliseconds apart next to it.
const (
	// diskAssumedRate is the write rate (bytes per second) assumed until a faster one is
	// measured: a fast NVMe drive or the page cache.
	diskAssumedRate = 4 << 30
	// diskMaxRate caps the measured rate, so one odd sample cannot keep the watchdog at its
	// fastest for the rest of the job.
	diskMaxRate = 32 << 30
	// diskPollMin is the shortest wait between two polls.
	diskPollMin = 2 * time.Millisecond
	// diskPollCostFactor keeps the watchdog's own cost down: it waits at least this many
	// times as long as the last measurement took (a job with a million files is slow to
	// walk), so it uses at most a fifth of a core.
	diskPollCostFactor = 4
)

// nextDiskPoll is how long to wait before measuring again a job that has used used of its
// limit bytes, when it may write at rate bytes per second and the last measurement took
// cost: half the time the job would need to reach the cap at that rate, within
// [diskPollMin (or cost×diskPollCostFactor), maxWait].
func nextDiskPoll(limit, used int64, rate float64, cost, maxWait time.Duration) time.Duration {
	floor := max(diskPollMin, cost*diskPollCostFactor)
	if rate <= 0 {
		rate = diskAssumedRate
	}
	wait := time.Duration(float64(max(limit-used, 0)) / rate / 2 * float64(time.Second))
	return max(floor, min(wait, maxWait))
}

// diskWatch is the watchdog of one Wait: it measures the job's disk use on nextDiskPoll's
// schedule and kills the container once it passes the cap.
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
		upper, merged, killer := "", "", (*initKiller)(nil)
		if info, err := r.cli.ContainerInspect(ctx, cid); err == nil {
			upper, merged = upperDir(info), mergedDir(info)
			if info.State != nil && info.State.Running {
				killer = openInitKiller(info.State.Pid, cid)
			}
		}
		defer killer.close()
		rate := float64(diskAssumedRate)
		lastUsed, lastAt := int64(0), time.Now()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			at := time.Now()
			used := r.diskUsage(ctx, ws, cid, upper, merged)
			cost := time.Since(at)
			if ctx.Err() != nil {
				return
			}
			if used > limit {
				// Set before the kill, so Wait sees it once the container has exited.
				w.exceeded.Store(true)
				// The init process first, directly: the engine's kill takes tens of
				// milliseconds, in which a fast writer writes tens of megabytes more.
				fast := killer.kill()
				r.log.Warn("job exceeded its disk limit; killing it", "container", shortID(cid), "used_bytes", used,
					"limit_bytes", limit, "direct_kill", fast)
				if err := r.kill(cid); err != nil {
					r.log.Error("kill of a job over its disk limit failed", "container", shortID(cid), "err", err)
				}
				return
			}
			// Samples shorter than a millisecond say more about the clock than the job.
			if dt := at.Sub(lastAt); dt >= time.Millisecond && used > lastUsed {
				rate = min(max(rate, float64(used-lastUsed)/dt.Seconds()), diskMaxRate)
			}
			lastUsed, lastAt = used, at
			timer.Reset(nextDiskPoll(limit, used, rate, cost, r.opts.DiskPollInterval))
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
func (r *Runtime) diskUsage(ctx context.Context, ws executor.Workspace, cid, upper, merged string) int64 {
	total := dirBytes(ws.OutputDir) + dirBytes(ws.ArtifactsDir)
	if upper != "" {
		return total + layerBytes(upper, merged)
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
	return readableDir(info.GraphDriver.Data["UpperDir"])
}

// mergedDir is the container's root file system as the job sees it, if this process can
// read it.
func mergedDir(info container.InspectResponse) string {
	return readableDir(info.GraphDriver.Data["MergedDir"])
}

func readableDir(dir string) string {
	if dir == "" {
		return ""
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return ""
	}
	return dir
}

// layerBytes is what the writable layer holds: the files under upper, each at its size in
// upper or, when larger, in merged (the job's view). With fuse-overlayfs the job's writes sit
// in the kernel's write-back cache for a while before they reach upper, so upper alone lags
// tens of megabytes behind a fast writer; merged is up to date.
func layerBytes(upper, merged string) int64 {
	if merged == "" {
		return dirBytes(upper)
	}
	var n int64
	_ = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		size := fileBytes(d)
		if rel, err := filepath.Rel(upper, p); err == nil {
			if fi, err := os.Lstat(filepath.Join(merged, rel)); err == nil && fi.Mode().IsRegular() {
				size = max(size, statBytes(fi))
			}
		}
		n += size
		return nil
	})
	return n
}

// dirBytes sums what the regular files under dir take: each file's size, or its allocated
// blocks when they are more (space reserved with fallocate counts before it is written). It
// never follows a symlink and skips what vanishes or cannot be read during the walk.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // vanished or unreadable entries are skipped; the rest still counts
		}
		n += fileBytes(d)
		return nil
	})
	return n
}

// fileBytes is what a directory entry's file takes; 0 if it vanished.
func fileBytes(d fs.DirEntry) int64 {
	fi, err := d.Info()
	if err != nil {
		return 0
	}
	return statBytes(fi)
}

// statBytes is a file's size, or its allocated blocks when they are more.
func statBytes(fi fs.FileInfo) int64 {
	size := fi.Size()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		size = max(size, st.Blocks*512)
	}
	return size
}
