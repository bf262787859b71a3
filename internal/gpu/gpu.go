// Package gpu finds the host's NVIDIA GPUs and the NVIDIA Container Toolkit
// version by running nvidia-smi and nvidia-container-toolkit.
//
// Upstream ran both tools inside a throwaway `ubuntu` container (nvidia
// runtime for nvidia-smi; a privileged one with the host's /usr/bin and
// /usr/lib bound in for the toolkit). The executor here is a host process,
// so it runs them on the host directly: same answers, no image pull, no
// container start on every job.
package gpu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// GPU is one row of nvidia-smi's --query-gpu output. Values nvidia-smi
// reports as unavailable ("[N/A]", "[Not Supported]", ...) are "" (0 for
// MemoryMiB). The string fields carry nvidia-smi's text without units, as
// upstream forwarded it: PowerLimit in W, the clocks in MHz.
type GPU struct {
	Name          string
	Driver        string
	MemoryMiB     int
	ComputeCap    string
	PowerLimit    string
	GraphicsClock string
	MemoryClock   string
	UUID          string
	Serial        string
}

// Detector tells what GPUs the host has and which container toolkit drives
// them.
type Detector interface {
	// GPUs lists the host's GPUs; a host without NVIDIA tooling returns (nil, nil).
	GPUs(ctx context.Context) ([]GPU, error)
	// ToolkitVersion returns the NVIDIA Container Toolkit version ("" and ErrNoToolkit if absent).
	ToolkitVersion(ctx context.Context) (string, error)
}

// ErrNoToolkit means nvidia-container-toolkit is not installed.
var ErrNoToolkit = errors.New("gpu: nvidia-container-toolkit not found")

// DefaultTimeout bounds each command when NvidiaSMI.Timeout is 0. nvidia-smi
// can take seconds on a many-GPU host without persistence mode; anything
// near this long means a wedged driver.
const DefaultTimeout = 20 * time.Second

// queryFields is the --query-gpu list, in GPU's field order. Upstream also
// queried `name` twice; once is enough.
const queryFields = "name,driver_version,memory.total,compute_cap,power.limit,clocks.gr,clocks.mem,uuid,serial"

const numFields = 9

// Output caps: a few hundred bytes per GPU is the real size, so these only
// stop a broken binary from filling memory.
const (
	maxStdout = 1 << 20
	maxStderr = 2 << 10
)

// NvidiaSMI is the Detector for a real host.
type NvidiaSMI struct {
	// SMIPath and ToolkitPath locate the binaries; "" looks up "nvidia-smi"
	// and "nvidia-container-toolkit" on PATH.
	SMIPath, ToolkitPath string
	// Timeout bounds each command; 0 means DefaultTimeout.
	Timeout time.Duration
}

// GPUs runs nvidia-smi. A missing binary means no NVIDIA tooling: (nil, nil).
// A present binary that fails (no driver, no devices, timeout) is an error.
func (n NvidiaSMI) GPUs(ctx context.Context) ([]GPU, error) {
	path, found, err := lookPath(n.SMIPath, "nvidia-smi")
	if err != nil || !found {
		return nil, err
	}
	out, err := run(ctx, n.timeout(), path, "--query-gpu="+queryFields, "--format=csv,noheader,nounits")
	if err != nil {
		return nil, err
	}
	gpus, err := ParseCSV(out)
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, path)
	}
	return gpus, nil
}

// ToolkitVersion runs `nvidia-container-toolkit --version` and returns the
// last space-separated token of its first line, e.g. "1.17.4" from
// "NVIDIA Container Runtime Hook version 1.17.4".
func (n NvidiaSMI) ToolkitVersion(ctx context.Context) (string, error) {
	path, found, err := lookPath(n.ToolkitPath, "nvidia-container-toolkit")
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%w (looked for %s)", ErrNoToolkit, orDefault(n.ToolkitPath, "nvidia-container-toolkit on PATH"))
	}
	out, err := run(ctx, n.timeout(), path, "--version")
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(string(out), "\n")
	fields := strings.Fields(first)
	if len(fields) == 0 {
		return "", fmt.Errorf("gpu: %s --version printed no version on its first line", path)
	}
	return fields[len(fields)-1], nil
}

func (n NvidiaSMI) timeout() time.Duration {
	if n.Timeout > 0 {
		return n.Timeout
	}
	return DefaultTimeout
}

// None is the Detector for a host with no GPUs.
type None struct{}

// GPUs returns no GPUs.
func (None) GPUs(context.Context) ([]GPU, error) { return nil, nil }

// ToolkitVersion reports the toolkit as absent.
func (None) ToolkitVersion(context.Context) (string, error) { return "", ErrNoToolkit }

// lookPath resolves configured, or name on PATH when configured is "".
// Only "does not exist" counts as not installed (found false, no error); a
// file that exists but cannot be run is a host problem worth reporting.
func lookPath(configured, name string) (path string, found bool, err error) {
	target := orDefault(configured, name)
	path, err = exec.LookPath(target)
	switch {
	case err == nil:
		return path, true, nil
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	default:
		return "", false, fmt.Errorf("gpu: %s: %w", target, err)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ParseCSV parses nvidia-smi's `--format=csv,noheader,nounits` output for
// the fields NvidiaSMI queries: one GPU per line, blank lines skipped.
// Unavailable values ("[N/A]", "[Not Supported]", "N/A") become "" or 0;
// spaces around values and a stray unit on memory.total are tolerated.
// A line with the wrong number of fields, or a memory.total that is not a
// whole number, is an error naming the line.
func ParseCSV(out []byte) ([]GPU, error) {
	var gpus []GPU
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		bad := func(why string) error {
			return fmt.Errorf("gpu: nvidia-smi line %d %q: %s", i+1, clip(line, 200), why)
		}
		f := strings.Split(line, ",")
		if len(f) != numFields {
			return nil, bad(fmt.Sprintf("want %d comma-separated fields (%s), got %d", numFields, queryFields, len(f)))
		}
		for j := range f {
			f[j] = value(f[j])
		}
		mem := 0
		if f[2] != "" {
			digits := strings.TrimSpace(strings.TrimSuffix(f[2], "MiB"))
			m, err := strconv.Atoi(digits)
			if err != nil || m < 0 {
				return nil, bad(fmt.Sprintf("memory.total %q is not a whole number of MiB", f[2]))
			}
			mem = m
		}
		gpus = append(gpus, GPU{
			Name: f[0], Driver: f[1], MemoryMiB: mem, ComputeCap: f[3],
			PowerLimit: f[4], GraphicsClock: f[5], MemoryClock: f[6], UUID: f[7], Serial: f[8],
		})
	}
	return gpus, nil
}

// value trims a CSV field and maps nvidia-smi's "not available" markers,
// which are always bracketed ("[N/A]", "[Not Supported]", "[Unknown Error]")
// except for a bare "N/A", to "".
func value(s string) string {
	s = strings.TrimSpace(s)
	if s == "N/A" || (strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")) {
		return ""
	}
	return s
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
