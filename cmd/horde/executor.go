package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/executor/localrun"
	"github.com/computehorde/horde/internal/executor/volume"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/protocol"
)

// Exit statuses of `horde executor run` beyond 0 (finished) and 2 (usage).
const (
	exitJobFailed   = 1 // the job's fault: timeout, non-zero exit, download or upload failed
	exitHordeFailed = 3 // not the job's fault: security check, engine, image pull, …
)

func runExecutor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: horde executor <command> [flags]\n\n" +
		"  run    run a job spec on the local Docker engine exactly as a miner's executor would\n" +
		"  serve  run one job for a miner: connect to it with a token and do what it says (a miner starts this)\n" +
		"  pull   pre-load images into the local Docker engine\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: name a command (run, serve, pull)", errUsage)
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "run":
		return runExecutorRun(ctx, args[1:], stdout, stderr)
	case "serve":
		return runExecutorServe(ctx, args[1:], stdout, stderr)
	case "pull":
		return runExecutorPull(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("%w: unknown command %q (run, serve, pull)", errUsage, args[0])
	}
}

// engineFlags are the Docker runtime settings shared by the executor commands.
type engineFlags struct {
	workDir   *string
	registry  *string
	pullLimit *time.Duration
	grace     *time.Duration
	id        *string
}

func addEngineFlags(fs *flag.FlagSet) engineFlags {
	return engineFlags{
		workDir:   fs.String("work-dir", "", "parent of the job's temporary directories (default: the system temp dir; must be the same path on the Docker host)"),
		registry:  fs.String("registry-auth", "", "registry credentials, HOST=USER:PASSWORD[,HOST=USER:PASSWORD…] (default: $HORDE_REGISTRY_AUTH)"),
		pullLimit: fs.Duration("pull-timeout", docker.DefaultPullTimeout, "give up pulling an image after this long"),
		grace:     fs.Duration("cleanup-grace", docker.DefaultExpiryGrace, "how long past a job's deadline its container and files are kept should this process die, before any horde process removes them (at most 1m)"),
		id:        fs.String("executor-id", "", "label of this executor's containers and job directories (a miner gives all its executors its own, to remove what they leave when it restarts; default: random)"),
	}
}

func (f engineFlags) runtime(ctx context.Context, logger *slog.Logger) (*docker.Runtime, error) {
	spec := *f.registry
	if spec == "" {
		spec = os.Getenv("HORDE_REGISTRY_AUTH")
	}
	regs, err := parseRegistryAuth(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: --registry-auth: %v", errUsage, err)
	}
	if *f.grace <= 0 || *f.grace > docker.DefaultExpiryGrace {
		return nil, fmt.Errorf("%w: --cleanup-grace %v: want more than 0 and at most %v", errUsage, *f.grace, docker.DefaultExpiryGrace)
	}
	id := *f.id
	if id == "" {
		var suffix [4]byte
		_, _ = rand.Read(suffix[:])
		id = "horde-executor-run-" + hex.EncodeToString(suffix[:])
	}
	return docker.New(ctx, docker.Options{
		WorkDir:     *f.workDir,
		ExecutorID:  id,
		Registries:  regs,
		PullTimeout: *f.pullLimit,
		ExpiryGrace: *f.grace,
		Logger:      logger,
	})
}

// parseRegistryAuth reads "host=user:password,host2=user:password".
func parseRegistryAuth(s string) (map[string]docker.RegistryAuth, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]docker.RegistryAuth{}
	for _, item := range strings.Split(s, ",") {
		host, cred, ok := strings.Cut(item, "=")
		user, pass, ok2 := strings.Cut(cred, ":")
		if !ok || !ok2 || host == "" || user == "" {
			return nil, fmt.Errorf("%q: want HOST=USER:PASSWORD", redact(item))
		}
		out[host] = docker.RegistryAuth{Username: user, Password: pass}
	}
	return out, nil
}

// redact keeps a credential item's host only, for error messages.
func redact(item string) string {
	host, _, _ := strings.Cut(item, "=")
	return host + "=…"
}

func runExecutorRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("executor run", "executor run --spec job.json [flags]", stderr)
	specPath := fs.String("spec", "", "the job spec: V0JobRequest's fields (docker_image, docker_run_cmd, env, volume, output_upload, artifacts_dir, raw_script, docker_run_options_preset, executor_class) plus allowed_leeway, download_time_limit, execution_time_limit, upload_time_limit in seconds; - reads stdin")
	outDir := fs.String("output", "", "keep the job's /output (and artifacts under artifacts/) in this directory")
	hfEndpoint := fs.String("hf-endpoint", "", "Hugging Face endpoint for huggingface_volume (default: $HF_ENDPOINT or "+volume.DefaultHuggingFaceEndpoint+")")
	maxVolume := fs.Int64("max-volume-bytes", volume.DefaultMaxBytes, "cap on the job's unpacked input volume (negative: none)")
	allowEgress := fs.String("allow-egress", "", "comma-separated CIDRs or addresses that volume downloads and uploads may reach although they are internal (loopback, private, link-local, …), e.g. 127.0.0.1 for a test server on this machine (default: $HORDE_ALLOW_EGRESS)")
	verbose := fs.Bool("v", false, "log every executor event to stderr")
	engine := addEngineFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	policy, err := egressPolicy(*allowEgress)
	if err != nil {
		return err
	}
	if *specPath == "" {
		return fmt.Errorf("%w: --spec is required", errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	// A spec that cannot be read or parsed is a usage error (exit 2): exit 1 means the job
	// ran and failed.
	data, err := readSpec(*specPath)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	req, timing, err := localrun.ParseSpec(data)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errUsage, *specPath, err)
	}
	if *outDir != "" {
		abs, err := filepath.Abs(*outDir)
		if err == nil {
			err = os.MkdirAll(abs, 0o755)
		}
		if err != nil {
			return fmt.Errorf("--output %s: %w", *outDir, err)
		}
		*outDir = abs
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	rt, err := engine.runtime(ctx, logger)
	if err != nil {
		return err
	}
	defer rt.Close()
	logger.Info("volume downloads and uploads", "egress", policy)
	// Containers and workspaces of horde jobs past their deadline were abandoned by a killed
	// executor (this command's or a miner's): remove them before adding our own.
	if err := rt.SweepExpired(ctx); err != nil {
		logger.Warn("could not remove abandoned job containers", "err", err)
	}

	endpoint := *hfEndpoint
	if endpoint == "" {
		endpoint = os.Getenv("HF_ENDPOINT")
	}
	fmt.Fprintf(stdout, "job %s: image %s, class %s, limits %ds download / %ds execution / %ds upload\n",
		req.JobUUID, req.DockerImage, req.ExecutorClass, timing.DownloadTimeLimit, timing.ExecutionTimeLimit, timing.UploadTimeLimit)
	var mu sync.Mutex
	res, err := localrun.Run(ctx, req, timing, localrun.Options{
		Runtime: rt,
		Configure: func(c *executor.Config) {
			c.Logger = logger
			c.KeepOutput = *outDir
			c.GPUs = gpu.NvidiaSMI{}
			c.Egress = policy
			c.Volumes = volume.New(volume.Config{
				Egress:              policy,
				MaxBytes:            *maxVolume,
				HuggingFaceEndpoint: endpoint,
				HuggingFaceToken:    os.Getenv("HF_ACCESS_TOKEN"),
				Logger:              logger,
			})
		},
		OnEvent: func(ev localrun.Event) {
			mu.Lock()
			defer mu.Unlock()
			printEvent(stdout, ev)
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted: the job was stopped and its container and files removed")
		}
		return err
	}
	return printOutcome(stdout, res, *outDir)
}

// egressPolicy is the policy of --allow-egress, or of $HORDE_ALLOW_EGRESS when the flag is
// not given.
func egressPolicy(flagValue string) (egress.Policy, error) {
	spec, source := flagValue, "--allow-egress"
	if spec == "" {
		spec, source = os.Getenv("HORDE_ALLOW_EGRESS"), "$HORDE_ALLOW_EGRESS"
	}
	allow, err := egress.ParseAllow(spec)
	if err != nil {
		return egress.Policy{}, fmt.Errorf("%w: %s: %v", errUsage, source, err)
	}
	return egress.Policy{Allow: allow}, nil
}

func readSpec(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--spec: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, protocol.MaxFrameSize+1))
	if err != nil {
		return nil, fmt.Errorf("--spec %s: %w", path, err)
	}
	return data, nil
}

func printEvent(w io.Writer, ev localrun.Event) {
	outcome := "ok"
	detail := ev.Message.MessageType()
	switch m := ev.Message.(type) {
	case *protocol.V0JobFailedRequest:
		outcome, detail = "FAILED", fmt.Sprintf("%s: %s", m.Reason, m.Message)
	case *protocol.V0HordeFailedRequest:
		outcome, detail = "FAILED", fmt.Sprintf("%s: %s", m.Reason, m.Message)
	case *protocol.V0MachineSpecsRequest:
		outcome = "specs"
	}
	fmt.Fprintf(w, "  %-17s %-6s %8s  %s\n", ev.Stage, outcome, formatDuration(ev.Took), detail)
}

func formatDuration(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return d.Round(100 * time.Millisecond).String()
}

func printOutcome(w io.Writer, res localrun.Result, outDir string) error {
	var stdout, stderr string
	var err error
	switch m := res.Final.(type) {
	case *protocol.V0JobFinishedRequest:
		fmt.Fprintf(w, "outcome: finished in %s (job request to finished: %s)\n", formatDuration(res.Total), formatDuration(res.JobTime))
		stdout, stderr = m.DockerProcessStdout, m.DockerProcessStderr
		if m.UploadResults != nil {
			for key := range m.UploadResults.All() {
				fmt.Fprintf(w, "uploaded: %s\n", key)
			}
		}
		if m.Artifacts != nil {
			for key, b64 := range m.Artifacts.All() {
				fmt.Fprintf(w, "artifact: %s (%d base64 characters)\n", key, len(b64))
			}
		}
	case *protocol.V0JobFailedRequest:
		exit := ""
		if m.DockerProcessExitStatus != nil {
			exit = fmt.Sprintf(", exit code %d", *m.DockerProcessExitStatus)
		}
		fmt.Fprintf(w, "outcome: job failed (the job's fault): %s at stage %s%s: %s\n", m.Reason, m.Stage, exit, m.Message)
		if m.DockerProcessStdout != nil {
			stdout = *m.DockerProcessStdout
		}
		if m.DockerProcessStderr != nil {
			stderr = *m.DockerProcessStderr
		}
		err = exitCode(exitJobFailed)
	case *protocol.V0HordeFailedRequest:
		fmt.Fprintf(w, "outcome: horde failure (not the job's fault): %s at stage %s: %s\n", m.Reason, res.Events[len(res.Events)-1].Stage, m.Message)
		err = exitCode(exitHordeFailed)
	default:
		return errors.New("the executor reported no outcome")
	}
	if outDir != "" {
		fmt.Fprintf(w, "output kept in %s\n", outDir)
	}
	if stdout != "" {
		fmt.Fprintf(w, "--- stdout ---\n%s", withNewline(stdout))
	}
	if stderr != "" {
		fmt.Fprintf(w, "--- stderr ---\n%s", withNewline(stderr))
	}
	return err
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

func runExecutorPull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("executor pull", "executor pull [flags] IMAGE…", stderr)
	engine := addEngineFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: name at least one image", errUsage)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := engine.runtime(ctx, logger)
	if err != nil {
		return err
	}
	defer rt.Close()
	start := time.Now()
	if err := rt.Preload(ctx, fs.Args()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d image(s) present in %s\n", fs.NArg(), formatDuration(time.Since(start)))
	return nil
}
