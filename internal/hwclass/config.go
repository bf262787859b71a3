package hwclass

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// ParseClassValues parses upstream's comma-separated `class=value` format
// (DYNAMIC_EXECUTOR_CLASS_WEIGHTS), e.g.
// "spin_up-4min.gpu-24gb=98,always_on.llm.a6000=1". Spaces around entries,
// names and values are allowed; an empty string gives an empty map.
// Anything else is an error that names the bad entry: an empty entry, a
// missing '=', an unknown class, a class given twice, or a value that is not
// a finite number >= 0.
func (r *Registry) ParseClassValues(s string) (map[protocol.ExecutorClass]float64, error) {
	out := map[protocol.ExecutorClass]float64{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for i, entry := range strings.Split(s, ",") {
		bad := func(why string) error {
			return fmt.Errorf("hwclass: entry %d %q of %q: %s; write class=value entries separated by commas", i+1, entry, s, why)
		}
		name, value, ok := strings.Cut(entry, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case strings.TrimSpace(entry) == "":
			return nil, bad("empty entry")
		case !ok:
			return nil, bad("no '='")
		case name == "":
			return nil, bad("no class name")
		}
		class := protocol.ExecutorClass(name)
		if _, err := r.Lookup(class); err != nil {
			return nil, bad(fmt.Sprintf("unknown class %q (valid: %s)", name, r.namesText()))
		}
		if _, dup := out[class]; dup {
			return nil, bad(fmt.Sprintf("class %q given twice", name))
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, bad(fmt.Sprintf("value %q is not a finite number >= 0", value))
		}
		out[class] = v
	}
	return out, nil
}

// ParseOverrides returns a copy of r whose relative values are overridden by
// s, in the format of [Registry.ParseClassValues]. Classes not in s keep
// their values. (Upstream reads its weights string as complete, giving
// unlisted classes 0; to get that, list every class.)
func (r *Registry) ParseOverrides(s string) (*Registry, error) {
	values, err := r.ParseClassValues(s)
	if err != nil {
		return nil, err
	}
	return r.WithRelativeValues(values)
}

// Config is the JSON form of class settings: changes to known classes, keyed
// by class name. Every field is optional; an absent field keeps the class's
// value. Unknown keys, at any level, are rejected.
//
//	{"classes": {"always_on.test": {"relative_value": 5, "memory_bytes": 1073741824}}}
type Config struct {
	Classes map[protocol.ExecutorClass]ClassConfig `json:"classes"`
}

// ClassConfig changes one class; see [Class] for the meaning of each field.
// StorageGB sets the disk cap, Limits.DiskBytes, in GiB; MemoryBytes,
// NanoCPUs and PidsLimit set the other fields of Limits.
type ClassConfig struct {
	Description   *string   `json:"description,omitempty"`
	SpinUp        *Duration `json:"spin_up,omitempty"`
	HasGPU        *bool     `json:"has_gpu,omitempty"`
	GPUCount      *int      `json:"gpu_count,omitempty"`
	GPUVRAMGB     *int      `json:"gpu_vram_gb,omitempty"`
	CPUCores      *int      `json:"cpu_cores,omitempty"`
	RAMGB         *int      `json:"ram_gb,omitempty"`
	StorageGB     *int      `json:"storage_gb,omitempty"`
	RelativeValue *float64  `json:"relative_value,omitempty"`
	MemoryBytes   *int64    `json:"memory_bytes,omitempty"`
	NanoCPUs      *int64    `json:"nano_cpus,omitempty"`
	PidsLimit     *int64    `json:"pids_limit,omitempty"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("240s", "4m").
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a duration must be a string such as \"240s\" or \"4m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: write it like \"240s\" or \"4m\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// ParseConfig decodes one JSON Config strictly: unknown fields and trailing
// data are errors.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("hwclass: class config: %w; fix the JSON (known fields are those of hwclass.ClassConfig)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("hwclass: class config: data after the JSON object; the file must hold one object")
	}
	return cfg, nil
}

// Apply returns a copy of r with cfg's changes; unknown class names and
// values that leave a class invalid are errors naming the class and field.
func (r *Registry) Apply(cfg Config) (*Registry, error) {
	classes := r.Classes()
	for name, cc := range cfg.Classes {
		i := -1
		for j := range classes {
			if classes[j].Name == name {
				i = j
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("hwclass: class config: unknown executor class %q; valid classes: %s", name, r.namesText())
		}
		c := &classes[i]
		set(&c.Description, cc.Description)
		if cc.SpinUp != nil {
			c.SpinUp = time.Duration(*cc.SpinUp)
		}
		set(&c.HasGPU, cc.HasGPU)
		set(&c.GPUCount, cc.GPUCount)
		set(&c.GPUVRAMGB, cc.GPUVRAMGB)
		set(&c.CPUCores, cc.CPUCores)
		set(&c.RAMGB, cc.RAMGB)
		set(&c.RelativeValue, cc.RelativeValue)
		set(&c.Limits.MemoryBytes, cc.MemoryBytes)
		set(&c.Limits.NanoCPUs, cc.NanoCPUs)
		set(&c.Limits.Pids, cc.PidsLimit)
		if gb := cc.StorageGB; gb != nil {
			if *gb < 0 || int64(*gb) > math.MaxInt64/gib {
				return nil, fmt.Errorf("hwclass: class config: class %s: storage_gb is %d; it must be from 0 (no disk cap) to %d", name, *gb, math.MaxInt64/gib)
			}
			c.Limits.DiskBytes = int64(*gb) * gib
		}
	}
	return newRegistry(classes)
}

// LoadJSON is ParseConfig followed by Apply.
func (r *Registry) LoadJSON(data []byte) (*Registry, error) {
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return r.Apply(cfg)
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
