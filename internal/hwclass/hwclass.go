// Package hwclass is the registry of executor classes: for each of upstream's five classes
// (protocol.ExecutorClass names them on the wire) its short code, hardware description,
// spin-up time, relative value and the resource limits a job container gets on it. It also
// holds the manifest commitment codec (`<M:A3;S2>`), which is built on the short codes and
// writes protocol.Manifest, the one manifest type.
//
// A [Registry] is immutable and safe for concurrent use; the With… and Apply
// methods return changed copies.
package hwclass

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// MaxExecutorTimeout is upstream's MAX_EXECUTOR_TIMEOUT: the longest an
// executor may live.
const MaxExecutorTimeout = 20 * time.Minute

// Class is one executor class.
type Class struct {
	Name protocol.ExecutorClass // e.g. always_on.test
	// Short is the one-letter code in manifest commitments.
	Short       string
	Description string
	// SpinUp is how long an executor of the class may take to be ready.
	SpinUp    time.Duration
	HasGPU    bool
	GPUCount  int // 0 iff !HasGPU
	GPUVRAMGB int // per GPU
	CPUCores  int
	RAMGB     int
	// RelativeValue weighs the class's work in scoring (>= 0). Defaults are
	// upstream's DYNAMIC_EXECUTOR_CLASS_WEIGHTS (S 98, L 1, T 0, C 1, which
	// sum to 100); always_on.gpu-24gb is not listed upstream, so it is not
	// scored: 0.
	RelativeValue float64
	// Limits are what a job container gets on this class: MemoryBytes,
	// NanoCPUs and Pids > 0; DiskBytes (the class's storage, configured as
	// storage_gb) >= 0, 0 meaning no disk cap.
	Limits Limits
}

// Limits bounds the resources of one job container, in Docker's units. A
// zero field means no limit.
type Limits struct {
	// MemoryBytes caps the container's memory (and memory+swap, so no swap
	// is used).
	MemoryBytes int64
	// NanoCPUs caps CPU time in units of 1e-9 CPUs (2e9 = two CPUs).
	NanoCPUs int64
	// Pids caps the number of processes and threads.
	Pids int64
	// DiskBytes caps what the job writes to disk (its writable layer plus
	// its output and artifacts directories); past it the job is killed.
	DiskBytes int64
}

const (
	gib = int64(1) << 30
	mib = int64(1) << 20
	cpu = int64(1e9)
)

// defaultClasses are upstream's specs (compute_horde.executor_class) where
// upstream has them: name, short code, GPU, VRAM, spin-up time. Upstream
// gives no CPU, RAM or storage for the GPU classes and no limits at all;
// those values are ours: a modest host per GPU, and for always_on.test
// small limits that fit a 2-core development machine.
var defaultClasses = []Class{
	{
		Name: protocol.ExecutorClassSpinUp4minGPU24GB, Short: "S",
		Description: "cost-effective GPU machine with 24 GB of VRAM, started on demand (up to 4 minutes)",
		SpinUp:      240 * time.Second, HasGPU: true, GPUCount: 1, GPUVRAMGB: 24,
		CPUCores: 8, RAMGB: 32, RelativeValue: 98,
		Limits: Limits{MemoryBytes: 32 * gib, NanoCPUs: 8 * cpu, Pids: 4096, DiskBytes: 100 * gib},
	},
	{
		Name: protocol.ExecutorClassAlwaysOnGPU24GB, Short: "A",
		Description: "always-on GPU machine with 24 GB of VRAM",
		SpinUp:      3 * time.Second, HasGPU: true, GPUCount: 1, GPUVRAMGB: 24,
		CPUCores: 8, RAMGB: 32, RelativeValue: 0,
		Limits: Limits{MemoryBytes: 32 * gib, NanoCPUs: 8 * cpu, Pids: 4096, DiskBytes: 100 * gib},
	},
	{
		Name: protocol.ExecutorClassAlwaysOnLLMA6000, Short: "L",
		Description: "always-on NVIDIA RTX A6000 (48 GB of VRAM) for LLM inference",
		SpinUp:      30 * time.Second, HasGPU: true, GPUCount: 1, GPUVRAMGB: 48,
		CPUCores: 8, RAMGB: 64, RelativeValue: 1,
		Limits: Limits{MemoryBytes: 64 * gib, NanoCPUs: 8 * cpu, Pids: 4096, DiskBytes: 200 * gib},
	},
	{
		Name: protocol.ExecutorClassAlwaysOnTest, Short: "T",
		Description: "always-on CPU executor for testing the subnet; small enough for a 2-core development machine",
		SpinUp:      3 * time.Second, CPUCores: 1, RAMGB: 1, RelativeValue: 0,
		Limits: Limits{MemoryBytes: 512 * mib, NanoCPUs: 1 * cpu, Pids: 256, DiskBytes: 1 * gib},
	},
	{
		Name: protocol.ExecutorClassAlwaysOnCPU8c16GB, Short: "C",
		Description: "always-on CPU machine: 8 cores, 16 GB of RAM",
		SpinUp:      30 * time.Second, CPUCores: 8, RAMGB: 16, RelativeValue: 1,
		Limits: Limits{MemoryBytes: 16 * gib, NanoCPUs: 8 * cpu, Pids: 4096, DiskBytes: 50 * gib},
	},
}

// Registry is an immutable set of classes.
type Registry struct {
	classes []Class // sorted by name
}

// Default returns the registry of upstream's five classes with default
// values.
func Default() *Registry {
	r, err := newRegistry(slices.Clone(defaultClasses))
	if err != nil {
		panic("hwclass: default classes are invalid: " + err.Error())
	}
	return r
}

func newRegistry(classes []Class) (*Registry, error) {
	slices.SortFunc(classes, func(a, b Class) int { return cmp.Compare(a.Name, b.Name) })
	for _, c := range classes {
		if err := c.validate(); err != nil {
			return nil, err
		}
	}
	return &Registry{classes: classes}, nil
}

func (c Class) validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("hwclass: class %s: %s is %v; it must be %s", c.Name, field, v, want)
	}
	switch {
	case math.IsNaN(c.RelativeValue) || math.IsInf(c.RelativeValue, 0) || c.RelativeValue < 0:
		return bad("relative_value", c.RelativeValue, "a finite number >= 0")
	case c.SpinUp < 0:
		return bad("spin_up", c.SpinUp, ">= 0")
	case c.HasGPU != (c.GPUCount > 0):
		return bad("gpu_count", c.GPUCount, "> 0 exactly when has_gpu is true")
	case c.GPUCount < 0 || c.GPUVRAMGB < 0 || c.CPUCores < 0 || c.RAMGB < 0:
		return fmt.Errorf("hwclass: class %s: a hardware figure is negative; use 0 or more", c.Name)
	case c.Limits.DiskBytes < 0:
		return bad("the disk cap", c.Limits.DiskBytes, ">= 0 (0: none)")
	case c.Limits.MemoryBytes <= 0:
		return bad("memory_bytes", c.Limits.MemoryBytes, "> 0")
	case c.Limits.NanoCPUs <= 0:
		return bad("nano_cpus", c.Limits.NanoCPUs, "> 0")
	case c.Limits.Pids <= 0:
		return bad("pids_limit", c.Limits.Pids, "> 0")
	}
	return nil
}

// Lookup returns the class named name. An unknown name is an error that
// lists the valid ones.
func (r *Registry) Lookup(name protocol.ExecutorClass) (Class, error) {
	i, ok := slices.BinarySearchFunc(r.classes, name, func(c Class, n protocol.ExecutorClass) int { return cmp.Compare(c.Name, n) })
	if !ok {
		return Class{}, fmt.Errorf("hwclass: unknown executor class %q; valid classes: %s", name, r.namesText())
	}
	return r.classes[i], nil
}

// LookupShort returns the class with manifest short code code.
func (r *Registry) LookupShort(code string) (Class, bool) {
	for _, c := range r.classes {
		if c.Short == code {
			return c, true
		}
	}
	return Class{}, false
}

// Names returns the class names, sorted.
func (r *Registry) Names() []protocol.ExecutorClass {
	names := make([]protocol.ExecutorClass, len(r.classes))
	for i, c := range r.classes {
		names[i] = c.Name
	}
	return names
}

// namesText lists the class names for an error message.
func (r *Registry) namesText() string {
	var b strings.Builder
	for i, c := range r.classes {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(c.Name))
	}
	return b.String()
}

// Classes returns every class, sorted by name.
func (r *Registry) Classes() []Class { return slices.Clone(r.classes) }

// RelativeValues returns each class's relative value by name.
func (r *Registry) RelativeValues() map[protocol.ExecutorClass]float64 {
	m := make(map[protocol.ExecutorClass]float64, len(r.classes))
	for _, c := range r.classes {
		m[c.Name] = c.RelativeValue
	}
	return m
}

// WithRelativeValues returns a copy of r whose listed classes take the given
// relative values; unlisted classes keep theirs. An unknown class or a
// negative, NaN or infinite value is an error.
func (r *Registry) WithRelativeValues(values map[protocol.ExecutorClass]float64) (*Registry, error) {
	classes := slices.Clone(r.classes)
	for name, v := range values {
		i := slices.IndexFunc(classes, func(c Class) bool { return c.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("hwclass: unknown executor class %q; valid classes: %s", name, r.namesText())
		}
		classes[i].RelativeValue = v
	}
	return newRegistry(classes)
}
