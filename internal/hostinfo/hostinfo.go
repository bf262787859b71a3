// Package hostinfo describes the executor's host (GPUs, CPU, RAM, disk, OS)
// in the shape of upstream's V0MachineSpecsRequest specs.
//
// Upstream shelled out to lscpu and lsb_release; this reads /proc/cpuinfo,
// /proc/meminfo and os-release directly and calls statfs, so a collection
// without GPUs costs microseconds and needs no extra packages on the host.
package hostinfo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/computehorde/horde/internal/gpu"
)

// specs is the wire shape. Field order follows upstream's dict, and a part
// that could not be read is left out in favour of its *_scrape_error.
type specs struct {
	GPU     *gpuPart  `json:"gpu,omitempty"`
	GPUErr  string    `json:"gpu_scrape_error,omitempty"`
	CPU     *cpuPart  `json:"cpu,omitempty"`
	CPUErr  string    `json:"cpu_scrape_error,omitempty"`
	RAM     *ramPart  `json:"ram,omitempty"`
	RAMErr  string    `json:"ram_scrape_error,omitempty"`
	Disk    *diskPart `json:"hard_disk,omitempty"`
	DiskErr string    `json:"hard_disk_scrape_error,omitempty"`
	OS      *string   `json:"os,omitempty"`
	OSErr   string    `json:"os_scrape_error,omitempty"`
}

type gpuPart struct {
	Count   int         `json:"count"`
	Details []gpuDetail `json:"details"`
}

type gpuDetail struct {
	Name          string `json:"name"`
	Driver        string `json:"driver"`
	Capacity      int    `json:"capacity"` // MiB
	CUDA          string `json:"cuda"`     // compute capability, as upstream named it
	PowerLimit    string `json:"power_limit"`
	GraphicsSpeed string `json:"graphics_speed"`
	MemorySpeed   string `json:"memory_speed"`
	UUID          string `json:"uuid"`
	Serial        string `json:"serial"`
}

type cpuPart struct {
	Count  int       `json:"count"`
	Model  string    `json:"model"`
	Clocks []float64 `json:"clocks"` // MHz, one per CPU that reports it
}

// ramPart is in kB, as /proc/meminfo gives it.
type ramPart struct {
	Total     int64 `json:"total"`
	Free      int64 `json:"free"`
	Available int64 `json:"available"`
	Used      int64 `json:"used"` // total - free, as upstream computed it
}

// diskPart is in KiB, with shutil.disk_usage's meaning: free is what an
// unprivileged user can still write, so used + free can fall short of total.
type diskPart struct {
	Total uint64 `json:"total"`
	Used  uint64 `json:"used"`
	Free  uint64 `json:"free"`
}

// sources are the files Collect reads; tests point them at fixtures.
type sources struct {
	cpuinfo, meminfo string
	osRelease        []string // the first that exists is used, per os-release(5)
}

var host = sources{
	cpuinfo:   "/proc/cpuinfo",
	meminfo:   "/proc/meminfo",
	osRelease: []string{"/etc/os-release", "/usr/lib/os-release"},
}

// Read caps: far above real sizes (cpuinfo is ~1-2 KiB per CPU), they only
// keep a broken or hostile file from filling memory.
const (
	maxProcFile      = 8 << 20
	maxOSReleaseFile = 64 << 10
)

// Specs is one description of the host, as Collect found it.
type Specs struct {
	wire specs
}

// GPUCount is the number of GPUs found: 0 when there are none or they could not be listed.
func (s Specs) GPUCount() int {
	if s.wire.GPU == nil {
		return 0
	}
	return s.wire.GPU.Count
}

// JSON returns the specs in upstream's V0MachineSpecsRequest shape, never failing: a part that
// could not be read is replaced by "<part>_scrape_error": "<why>".
func (s Specs) JSON() json.RawMessage {
	b, err := json.Marshal(s.wire)
	if err != nil {
		// Unreachable with Collect's checks (no NaN gets in), but the specs are sent whatever
		// happens.
		b, _ = json.Marshal(map[string]string{"scrape_error": err.Error()})
	}
	return b
}

// Collect describes the host, never failing: what cannot be read is recorded as the reason
// ([Specs.JSON]).
//
// gpus may be nil, meaning no GPUs. diskPath is the filesystem whose usage
// is reported ("" means the working directory, as upstream used).
func Collect(ctx context.Context, gpus gpu.Detector, diskPath string) Specs {
	return host.collect(ctx, gpus, diskPath)
}

func (src sources) collect(ctx context.Context, gpus gpu.Detector, diskPath string) Specs {
	var s specs
	var err error
	if s.GPU, err = gpuSpecs(ctx, gpus); err != nil {
		s.GPUErr = err.Error()
	}
	if s.CPU, err = cpuSpecs(src.cpuinfo); err != nil {
		s.CPUErr = err.Error()
	}
	if s.RAM, err = ramSpecs(src.meminfo); err != nil {
		s.RAMErr = err.Error()
	}
	if s.Disk, err = diskSpecs(diskPath); err != nil {
		s.DiskErr = err.Error()
	}
	if s.OS, err = osName(src.osRelease); err != nil {
		s.OSErr = err.Error()
	}
	return Specs{wire: s}
}

func gpuSpecs(ctx context.Context, d gpu.Detector) (*gpuPart, error) {
	p := &gpuPart{Details: []gpuDetail{}}
	if d == nil {
		return p, nil
	}
	gpus, err := d.GPUs(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range gpus {
		p.Details = append(p.Details, gpuDetail{
			Name: g.Name, Driver: g.Driver, Capacity: g.MemoryMiB, CUDA: g.ComputeCap,
			PowerLimit: g.PowerLimit, GraphicsSpeed: g.GraphicsClock, MemorySpeed: g.MemoryClock,
			UUID: g.UUID, Serial: g.Serial,
		})
	}
	p.Count = len(p.Details)
	return p, nil
}

// cpuSpecs reads /proc/cpuinfo: one "processor" stanza per online CPU, the
// first "model name", and each stanza's "cpu MHz" (x86 only; other
// architectures leave clocks empty, as lscpu did).
func cpuSpecs(path string) (*cpuPart, error) {
	data, err := readCapped(path, maxProcFile)
	if err != nil {
		return nil, err
	}
	p := &cpuPart{Clocks: []float64{}}
	err = eachLine(data, func(n int, line string) error {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil // blank separators and architecture-specific oddities
		}
		switch strings.TrimSpace(key) {
		case "processor":
			p.Count++
		case "model name":
			if p.Model == "" {
				p.Model = strings.TrimSpace(val)
			}
		case "cpu MHz":
			mhz, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil || math.IsNaN(mhz) || math.IsInf(mhz, 0) || mhz < 0 {
				return fmt.Errorf("hostinfo: %s line %d: cpu MHz %q is not a finite number >= 0", path, n, clip(strings.TrimSpace(val), 40))
			}
			p.Clocks = append(p.Clocks, mhz)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if p.Count == 0 {
		return nil, fmt.Errorf("hostinfo: %s has no \"processor\" entries", path)
	}
	return p, nil
}

// ramSpecs reads MemTotal, MemFree and MemAvailable from /proc/meminfo.
func ramSpecs(path string) (*ramPart, error) {
	data, err := readCapped(path, maxProcFile)
	if err != nil {
		return nil, err
	}
	want := map[string]*int64{}
	p := &ramPart{}
	want["MemTotal"], want["MemFree"], want["MemAvailable"] = &p.Total, &p.Free, &p.Available
	err = eachLine(data, func(n int, line string) error {
		key, val, ok := strings.Cut(line, ":")
		dst := want[key]
		if !ok || dst == nil {
			return nil
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(val), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || kb < 0 || strings.TrimSpace(unit) != "kB" {
			return fmt.Errorf("hostinfo: %s line %d: %s %q is not a whole number of kB", path, n, key, clip(strings.TrimSpace(val), 40))
		}
		*dst = kb
		delete(want, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for _, k := range []string{"MemTotal", "MemFree", "MemAvailable"} {
			if want[k] != nil {
				missing = append(missing, k)
			}
		}
		return nil, fmt.Errorf("hostinfo: %s lacks %s", path, strings.Join(missing, ", "))
	}
	p.Used = p.Total - p.Free
	return p, nil
}

// diskSpecs is shutil.disk_usage in KiB.
func diskSpecs(path string) (*diskPart, error) {
	if path == "" {
		path = "."
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return nil, fmt.Errorf("hostinfo: statfs %s: %w", path, err)
	}
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	return &diskPart{
		Total: st.Blocks * unit / 1024,
		Used:  (st.Blocks - st.Bfree) * unit / 1024,
		Free:  st.Bavail * unit / 1024,
	}, nil
}

// osName returns PRETTY_NAME from the first os-release file that exists,
// what `lsb_release -d` printed upstream. Missing keys take os-release(5)'s
// defaults: NAME, then "Linux".
func osName(paths []string) (*string, error) {
	var data []byte
	var path string
	var err error
	for _, path = range paths {
		data, err = readCapped(path, maxOSReleaseFile)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("hostinfo: no os-release file (tried %s)", strings.Join(paths, ", "))
		}
		return nil, err
	}
	vars := map[string]string{}
	err = eachLine(data, func(n int, line string) error {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			return nil
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("hostinfo: %s line %d %q: not KEY=VALUE", path, n, clip(line, 80))
		}
		v, err := unquote(val)
		if err != nil {
			return fmt.Errorf("hostinfo: %s line %d %q: %w", path, n, clip(line, 80), err)
		}
		vars[key] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	name := "Linux"
	if v := vars["PRETTY_NAME"]; v != "" {
		name = v
	} else if v := vars["NAME"]; v != "" {
		name = v
	}
	return &name, nil
}

// unquote undoes os-release's shell-style quoting: a value in single or
// double quotes, where double quotes allow backslash escapes.
func unquote(v string) (string, error) {
	if v == "" || (v[0] != '"' && v[0] != '\'') {
		return v, nil
	}
	q := v[0]
	if len(v) < 2 || v[len(v)-1] != q {
		return "", errors.New("unterminated quote")
	}
	v = v[1 : len(v)-1]
	if q == '\'' || !strings.Contains(v, `\`) {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\\\"$`", v[i+1]) >= 0 {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String(), nil
}

// readCapped reads a whole file, refusing one larger than limit bytes.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hostinfo: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("hostinfo: reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("hostinfo: %s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// eachLine calls fn with each line of data, without its line ending, and
// its 1-based number.
func eachLine(data []byte, fn func(n int, line string) error) error {
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		if err := fn(n, strings.TrimRight(line, "\r\n")); err != nil {
			return err
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
