// Package executor runs exactly one ComputeHorde job: it connects to its miner over the
// miner↔executor websocket, receives the job, prepares the volume, runs the container through a
// Runtime (internal/executor/docker in production), reports each stage, and cleans up.
//
// The stage machine follows upstream's JobDriver (reference/protocol.md §3.2):
//
//	startup (StartupTimeLimit): await V0InitialJobRequest, run the security checks, make sure
//	    the image is present, prepare the workspace, send V0ExecutorReadyRequest;
//	deadline := allowed_leeway (or legacy timeout_seconds);
//	download (+download_time_limit): await V0JobRequest, fetch the volume, send V0VolumesReadyRequest;
//	execution (+execution_time_limit): run the container, send V0ExecutionDoneRequest;
//	upload (+upload_time_limit): collect artifacts, upload outputs, send V0MachineSpecsRequest
//	    and V0JobFinishedRequest.
//
// Machine specs are collected alongside, from the start of the job.
//
// The deadline is cumulative: time a stage does not use carries over. A failure the job caused
// becomes V0JobFailedRequest (with the stage and the container's output); anything else becomes
// V0HordeFailedRequest reported by the executor. Exactly one terminal message is sent, unless the
// miner cannot be reached.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/executor/upload"
	"github.com/computehorde/horde/internal/executor/volume"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/hwclass"
)

// Defaults of Config.
const (
	DefaultStartupTimeLimit = 5 * time.Second
	DefaultDialAttempts     = 5
)

// Clock is the executor's time source: deadlines are computed from Now and waited for with
// After. Tests inject a fake one so they need not sleep.
type Clock = clock.Clock

// Config configures Run.
type Config struct {
	// MinerURL is the miner's executor endpoint base, e.g. "ws://10.0.0.5:8000" (upstream's
	// MINER_ADDRESS). Required.
	MinerURL string
	// Token is this executor's single-use token (upstream's EXECUTOR_TOKEN,
	// "<job_uuid>-<uuid4>"). Required; it also keys the job in the Runtime.
	Token string
	// Runtime runs the job container. Required.
	Runtime Runtime
	// Classes maps the job's executor class to its container limits (memory, CPU, pids, disk)
	// and says whether it has GPUs; nil means hwclass.Default().
	Classes *hwclass.Registry
	// MaxDiskBytes, when positive, lowers every class's disk cap (storage_gb) to this many
	// bytes, for hosts with less free disk than the class promises.
	MaxDiskBytes int64
	// StartupTimeLimit bounds the wait for V0InitialJobRequest plus the security checks and the
	// image check (upstream's --startup-time-limit); zero means DefaultStartupTimeLimit.
	StartupTimeLimit time.Duration
	// Egress says which addresses the default Volumes and Uploads may reach on the job's
	// behalf; the zero value refuses loopback, private, link-local and the other internal
	// ranges. A Fetcher or Uploader passed in carries its own.
	Egress egress.Policy
	// Volumes fetches the job's input volume; nil means volume.New with default caps and
	// Egress.
	Volumes *volume.Fetcher
	// Uploads sends the job's outputs; nil means upload.New with default limits and Egress.
	Uploads *upload.Uploader
	// GPUs finds the host's GPUs (machine specs, GPU classes) and the NVIDIA Container
	// Toolkit version (security check for GPU classes); nil means gpu.None (no GPUs).
	GPUs gpu.Detector
	// GPUDevices are the GPUs of the host this executor owns (nvidia-smi indices or UUIDs, as
	// `executor serve --gpus` takes them): a GPU job gets exactly these, and the machine
	// specs list only these. Empty means every GPU of the host, right only where one executor
	// runs per host.
	GPUDevices []string
	// SpecsDisk is the path whose file system the machine specs describe; "" means the
	// current directory.
	SpecsDisk string
	// KeepOutput, when set, receives a copy of the job's /output (and artifacts under
	// artifacts/) before the workspace is wiped: `horde executor run --output DIR`.
	KeepOutput string
	// DialAttempts is how often to try connecting to the miner, with exponential backoff
	// (1 s, 2 s, 4 s, … plus jitter); zero means DefaultDialAttempts.
	DialAttempts int
	// HTTPClient is used for the websocket handshake; nil means a default client.
	HTTPClient *http.Client
	// Clock is the time source; nil means the real clock.
	Clock Clock
	// Logger receives one line per stage and failure; nil discards.
	Logger *slog.Logger
}

// Validate reports the first missing or malformed field, naming the fix.
func (c *Config) Validate() error {
	switch {
	case c.MinerURL == "":
		return errors.New("executor: Config.MinerURL is empty; set it to the miner's ws:// address (MINER_ADDRESS)")
	case !strings.HasPrefix(c.MinerURL, "ws://") && !strings.HasPrefix(c.MinerURL, "wss://") &&
		!strings.HasPrefix(c.MinerURL, "http://") && !strings.HasPrefix(c.MinerURL, "https://"):
		return fmt.Errorf("executor: Config.MinerURL %q must start with ws:// or wss://", c.MinerURL)
	case c.Token == "":
		return errors.New("executor: Config.Token is empty; set it to the token the miner gave this executor (EXECUTOR_TOKEN)")
	case c.Runtime == nil:
		return errors.New("executor: Config.Runtime is nil; pass a container runtime (internal/executor/docker)")
	case c.StartupTimeLimit < 0:
		return errors.New("executor: Config.StartupTimeLimit is negative")
	}
	if err := checkGPUDevices(c.GPUDevices); err != nil {
		return fmt.Errorf("executor: Config.GPUDevices: %w", err)
	}
	return nil
}

// ParseGPUDevices parses a comma-separated list of GPU device IDs, nvidia-smi indices ("0,1")
// or UUIDs ("GPU-…"), as `executor serve --gpus` takes it; "" means none.
func ParseGPUDevices(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	ids := strings.Split(s, ",")
	for i := range ids {
		ids[i] = strings.TrimSpace(ids[i])
	}
	if err := checkGPUDevices(ids); err != nil {
		return nil, fmt.Errorf("GPU list %q: %w", s, err)
	}
	return ids, nil
}

// checkGPUDevices refuses empty, malformed and repeated device IDs: a repeated one would
// silently give the executor fewer GPUs than its class promises.
func checkGPUDevices(ids []string) error {
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("entry %d is empty; give device indices or UUIDs separated by commas, e.g. 0,1", i+1)
		}
		for _, r := range id {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
				return fmt.Errorf("entry %q is not a device index or UUID (digits, letters and '-' only)", id)
			}
		}
		if seen[id] {
			return fmt.Errorf("device %s is listed twice; list each GPU once", id)
		}
		seen[id] = true
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StartupTimeLimit == 0 {
		c.StartupTimeLimit = DefaultStartupTimeLimit
	}
	if c.Classes == nil {
		c.Classes = hwclass.Default()
	}
	if c.Volumes == nil {
		c.Volumes = volume.New(volume.Config{Egress: c.Egress, Logger: c.Logger})
	}
	if c.Uploads == nil {
		c.Uploads = upload.New(upload.Config{Egress: c.Egress, Logger: c.Logger})
	}
	if c.GPUs == nil {
		c.GPUs = gpu.None{}
	}
	if len(c.GPUDevices) > 0 {
		c.GPUs = ownedGPUs{Detector: c.GPUs, ids: c.GPUDevices}
	}
	if c.SpecsDisk == "" {
		c.SpecsDisk = "."
	}
	if c.DialAttempts <= 0 {
		c.DialAttempts = DefaultDialAttempts
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	return c
}

// ExecutorURL returns the websocket URL the executor dials: {minerURL}/v0.1/executor_interface/{token}.
func ExecutorURL(minerURL, token string) string {
	return strings.TrimRight(minerURL, "/") + "/v0.1/executor_interface/" + token
}

// Run serves exactly one job and returns when it has been reported (nil), or with an error when
// the miner could not be reached or the report could not be sent. A job that fails is reported
// to the miner and is not an error of Run. Cancelling ctx stops the job (the container is
// killed and removed) and returns ctx's error.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("token_prefix", tokenPrefix(cfg.Token))

	conn, err := dialMiner(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer conn.close()

	d := &driver{cfg: cfg, log: log, conn: conn, clock: cfg.Clock, jobUUID: jobUUIDFromToken(cfg.Token)}
	return d.run(ctx)
}

// jobUUIDFromToken returns the job UUID that starts upstream's "<job_uuid>-<uuid4>" tokens, so a
// failure before the initial request can still name the job; "" if the token has another shape.
func jobUUIDFromToken(token string) string {
	if len(token) < 36 {
		return ""
	}
	if u, err := uuid.Parse(token[:36]); err == nil {
		return u.String()
	}
	return ""
}

// tokenPrefix is the part of the token safe to log (the job UUID part, not the secret suffix).
func tokenPrefix(token string) string {
	if len(token) > 36 {
		return token[:36]
	}
	if len(token) > 8 {
		return token[:8]
	}
	return token
}
