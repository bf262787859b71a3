package executor

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/computehorde/horde/internal/protocol"
)

// Bounds on what one job may ask for. They hold for the requests a miner relays and for the
// spec `horde executor run` reads, so a spec that passes there is accepted by every executor.
const (
	// MaxTimeLimit bounds each time limit of a job (allowed_leeway, download_time_limit,
	// execution_time_limit, upload_time_limit, streaming_start_time_limit and the legacy
	// timeout_seconds): a week. More is a mistake, and it overflowed the deadline arithmetic.
	MaxTimeLimit = 7 * 24 * time.Hour
	// MaxEnvVars and MaxEnvBytes bound env: the variables and their "KEY=value" bytes.
	MaxEnvVars  = 1024
	MaxEnvBytes = 256 << 10
	// MaxCmdArgs and MaxCmdBytes bound docker_run_cmd: the arguments and their bytes.
	MaxCmdArgs  = 4096
	MaxCmdBytes = 256 << 10
	// MaxArgBytes bounds one argument or one "KEY=value": the kernel's MAX_ARG_STRLEN (32
	// pages of 4 KiB, NUL included). Together the bounds stay well under the 2 MiB the
	// kernel allows for a program's arguments and environment.
	MaxArgBytes = 32*4096 - 1
)

// RequestError is a field of a job request that no executor will run: the job's fault, never
// the miner's. Field is the wire name ("env", "execution_time_limit", …).
type RequestError struct {
	Field   string
	Problem string
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Problem }

func badField(field, format string, args ...any) error {
	return &RequestError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// CheckTiming checks the time limits of an initial job request: each one between zero and
// MaxTimeLimit.
func CheckTiming(timing *protocol.ExecutorTiming, timeoutSeconds *int) error {
	var errs []error
	check := func(field string, n int) {
		switch {
		case n < 0:
			errs = append(errs, badField(field, "%d seconds is negative", n))
		case int64(n) > int64(MaxTimeLimit/time.Second):
			errs = append(errs, badField(field, "%d seconds is more than the %d-second (7-day) bound", n, int64(MaxTimeLimit/time.Second)))
		}
	}
	if timing != nil {
		check("allowed_leeway", timing.AllowedLeeway)
		check("download_time_limit", timing.DownloadTimeLimit)
		check("execution_time_limit", timing.ExecutionTimeLimit)
		check("upload_time_limit", timing.UploadTimeLimit)
		check("streaming_start_time_limit", timing.StreamingStartTimeLimit)
	}
	if timeoutSeconds != nil {
		check("timeout_seconds", *timeoutSeconds)
	}
	return errors.Join(errs...)
}

// CheckImage checks an image reference the way the engine will read it: a non-empty,
// lower-case repository name with an optional tag or digest and no spaces.
func CheckImage(field, ref string) error {
	if ref == "" {
		return badField(field, "empty; name the image to run, e.g. python:3.12-slim")
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return badField(field, "%q is not a valid image reference: %v", ref, err)
	}
	return nil
}

// envKey is what a variable name may be: letters, digits and '_', '.', '-', not starting
// with a digit. POSIX asks for less; the tools that read such names accept these.
var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// CheckJobRequest checks the fields of a job request that are the user's to choose and that
// the engine or the kernel would otherwise reject late, slowly or confusingly: docker_image
// (when given), env, docker_run_cmd and artifacts_dir.
func CheckJobRequest(req *protocol.V0JobRequest) error {
	var errs []error
	if req.DockerImage != "" {
		if err := CheckImage("docker_image", req.DockerImage); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, checkEnv(&req.Env), checkCmd(req.DockerRunCmd))
	if req.ArtifactsDir != nil {
		errs = append(errs, CheckArtifactsDir(*req.ArtifactsDir))
	}
	return errors.Join(errs...)
}

func checkEnv(env *protocol.OrderedMap[string]) error {
	if n := env.Len(); n > MaxEnvVars {
		return badField("env", "%d variables, more than the %d allowed", n, MaxEnvVars)
	}
	total := 0
	for k, v := range env.All() {
		switch {
		case k == "":
			return badField("env", "a variable has an empty name")
		case !envKey.MatchString(k):
			return badField("env", "variable name %q: use letters, digits, '_', '.' and '-', not starting with a digit", clip(k))
		case strings.IndexByte(v, 0) >= 0:
			return badField("env", "variable %s holds a NUL byte, which no program can receive", k)
		case len(k)+1+len(v) > MaxArgBytes:
			return badField("env", "variable %s is %d bytes, more than the kernel's %d per variable", k, len(k)+1+len(v), MaxArgBytes)
		}
		total += len(k) + len(v) + 2
	}
	if total > MaxEnvBytes {
		return badField("env", "%d bytes in all, more than the %d allowed", total, MaxEnvBytes)
	}
	return nil
}

func checkCmd(cmd []string) error {
	if len(cmd) > MaxCmdArgs {
		return badField("docker_run_cmd", "%d arguments, more than the %d allowed", len(cmd), MaxCmdArgs)
	}
	total := 0
	for i, a := range cmd {
		switch {
		case strings.IndexByte(a, 0) >= 0:
			return badField("docker_run_cmd", "argument %d holds a NUL byte, which no program can receive", i)
		case len(a) > MaxArgBytes:
			return badField("docker_run_cmd", "argument %d is %d bytes, more than the kernel's %d per argument", i, len(a), MaxArgBytes)
		}
		total += len(a) + 1
	}
	if total > MaxCmdBytes {
		return badField("docker_run_cmd", "%d bytes in all, more than the %d allowed", total, MaxCmdBytes)
	}
	return nil
}

// CheckArtifactsDir accepts an absolute, clean container path that does not replace or
// shadow the job's own mounts (/volume, /output, /script.py) or the kernel's pseudo file
// systems (/proc, /sys, /dev).
func CheckArtifactsDir(p string) error {
	switch {
	case p == "":
		return nil
	case !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0):
		return badField("artifacts_dir", "%q must be an absolute container path such as /artifacts", clip(p))
	case path.Clean(p) != p:
		return badField("artifacts_dir", "%q is not a clean path; write it as %q", clip(p), path.Clean(p))
	}
	switch p {
	case "/", "/volume", "/output", "/script.py":
		return badField("artifacts_dir", "%q would replace a mount of the job's own (/, /volume, /output and /script.py are taken)", p)
	}
	for _, sys := range []string{"/proc", "/sys", "/dev", "/script.py"} {
		if p == sys || strings.HasPrefix(p, sys+"/") {
			return badField("artifacts_dir", "%q is under %s, which a job may not mount over", clip(p), sys)
		}
	}
	return nil
}

// clip shortens what an error quotes back from the request.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// seconds converts a whole number of seconds to a Duration, saturating instead of
// overflowing (limits are bounded by CheckTiming; this is the second line).
func seconds(n int) time.Duration {
	const maxSeconds = int64(1<<63-1) / int64(time.Second)
	switch {
	case int64(n) > maxSeconds:
		return 1<<63 - 1
	case int64(n) < -maxSeconds:
		return -1 << 63
	}
	return time.Duration(n) * time.Second
}
