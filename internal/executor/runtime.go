package executor

import (
	"context"
	"errors"
	"time"

	"github.com/computehorde/horde/internal/hwclass"
)

// ErrBadImage marks an image a job named that cannot be had: a malformed reference, an image
// its registry does not have or refuses to hand out, or one past the runtime's size bound.
// EnsureImage's errors wrap it when that is the cause; it is the job's fault, while any other
// pull failure (registry or engine unreachable, 5xx, timeout) is the host's.
var ErrBadImage = errors.New("image unavailable")

// Runtime runs job containers. The production implementation is internal/executor/docker; the
// executor only sees this interface. Every method is keyed by the job's runtime ID (the executor
// token), takes a ctx, and is safe for concurrent use on different IDs.
//
// The life of one job: Prepare → (fill Workspace.VolumeDir) → Start → Wait → (read
// Workspace.OutputDir) → Remove. Remove must be called once Prepare succeeded, on every path.
type Runtime interface {
	// EnsureImage makes ref available to Start: a local copy is used as is; otherwise it is
	// pulled, with the runtime's registry credentials for ref's registry and within the
	// runtime's size and time bounds. Errors the job caused wrap ErrBadImage.
	EnsureImage(ctx context.Context, ref string) error
	// Prepare creates the job's host directories. The volume directory is mounted read-only at
	// /volume, the output directory read-write at /output, the artifacts directory read-write
	// at RunSpec.ArtifactsMount when that is set, and ScriptPath read-only at /script.py when
	// RunSpec.Script is set. A positive lifetime is how long from now the job may hold them
	// at most: past it (and a short grace) they count as abandoned, and any horde process on
	// the host may remove them (a killed executor cannot); zero means never.
	Prepare(ctx context.Context, id string, lifetime time.Duration) (Workspace, error)
	// Start creates and starts the container of spec.ID, which must have been prepared. ctx
	// bounds the creation and the start.
	Start(ctx context.Context, spec RunSpec) error
	// Wait waits until the container exits or spec.Timeout passes (counted from the call to
	// Start), kills it in the second case, and collects its exit status and output. The full stdout and
	// stderr are written to stdout.txt and stderr.txt in the output directory. If ctx ends
	// first the container is killed and ctx's error returned.
	Wait(ctx context.Context, id string) (RunResult, error)
	// Remove force-removes the container and the workspace of id. It is idempotent ("already
	// gone" is success) and runs to completion on a short timeout of its own even when ctx is
	// already cancelled, so it can be deferred on every path.
	Remove(ctx context.Context, id string) error
	// Close removes whatever jobs this runtime still holds and releases the engine client.
	Close() error
}

// Workspace is the host side of one job's directories.
type Workspace struct {
	// Dir holds everything of the job; Remove deletes it.
	Dir string
	// VolumeDir is mounted read-only at /volume.
	VolumeDir string
	// OutputDir is mounted read-write at /output.
	OutputDir string
	// ArtifactsDir is mounted read-write at RunSpec.ArtifactsMount, when that is set.
	ArtifactsDir string
	// ScriptPath is where a raw_script job's script is written before Start; it is mounted
	// read-only at /script.py when RunSpec.Script is set.
	ScriptPath string
}

// Limits bounds the resources of one job container: its class's hwclass.Class.Limits, the
// disk cap lowered to Config.MaxDiskBytes where that is smaller. The type lives in hwclass, the
// lower layer; this name keeps the Runtime contract readable on its own (as os.FileMode is
// fs.FileMode).
type Limits = hwclass.Limits

// RunSpec says what to run.
type RunSpec struct {
	// ID is the runtime key given to Prepare (the executor token).
	ID string
	// JobUUID labels the container (horde.job_uuid).
	JobUUID string
	// Image is the image reference; it must be present (EnsureImage).
	Image string
	// Cmd replaces the image's default command when non-empty.
	Cmd []string
	// Env is "KEY=value" entries, in order.
	Env []string
	// Limits bounds the container.
	Limits Limits
	// GPUs gives the container GPUs (upstream's nvidia_all preset): those of GPUDevices, or
	// every GPU of the host when GPUDevices is empty. Only GPU classes set it.
	GPUs bool
	// GPUDevices are the GPU device IDs (nvidia-smi indices or UUIDs) the container may use
	// when GPUs is set: the executor's own (Config.GPUDevices), so that executors sharing a
	// host do not share GPUs.
	GPUDevices []string
	// ArtifactsMount is the absolute container path at which Workspace.ArtifactsDir is
	// mounted; empty means no artifacts directory.
	ArtifactsMount string
	// Script mounts Workspace.ScriptPath read-only at /script.py (raw_script jobs).
	Script bool
	// Timeout is the execution limit counted from the call to Start; zero means none.
	Timeout time.Duration
	// Lifetime, when positive, is how long from the call to Start the job may hold its
	// container and workspace at most (the rest of its deadline, upload included): past it
	// and a short grace, any horde process on the host may remove them.
	Lifetime time.Duration
}

// RunResult is the outcome of one container run.
type RunResult struct {
	// ExitCode is the container's exit status (137 after a kill).
	ExitCode int
	// TimedOut says the container hit RunSpec.Timeout and was killed.
	TimedOut bool
	// OOMKilled says the kernel killed the job for exceeding its memory limit.
	OOMKilled bool
	// DiskExceeded says the job was killed for writing more than Limits.DiskBytes.
	DiskExceeded bool
	// Stdout and Stderr are the container's streams, truncated like upstream: above
	// MaxOutputChars characters, the first and last MaxOutputChars/2 joined by " ... ".
	Stdout, Stderr string
	// Duration is the time from Start to exit (or kill).
	Duration time.Duration
}

// MaxOutputChars is upstream's cap on stdout and stderr in protocol messages.
const MaxOutputChars = 1_000_000
