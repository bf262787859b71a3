package hwclass

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

func TestDefaultRegistry(t *testing.T) {
	r := Default()
	wantNames := []protocol.ExecutorClass{AlwaysOnCPU8c16GB, AlwaysOnGPU24GB, AlwaysOnLLMA6000, AlwaysOnTest, SpinUp4minGPU24GB}
	if got := r.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() = %v, want %v", got, wantNames)
	}
	tests := []struct {
		name   protocol.ExecutorClass
		short  string
		spinUp time.Duration
		gpu    bool
		vram   int
		value  float64
	}{
		{SpinUp4minGPU24GB, "S", 240 * time.Second, true, 24, 98},
		{AlwaysOnGPU24GB, "A", 3 * time.Second, true, 24, 0},
		{AlwaysOnLLMA6000, "L", 30 * time.Second, true, 48, 1},
		{AlwaysOnTest, "T", 3 * time.Second, false, 0, 0},
		{AlwaysOnCPU8c16GB, "C", 30 * time.Second, false, 0, 1},
	}
	var sum float64
	for _, tt := range tests {
		c, err := r.Lookup(tt.name)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", tt.name, err)
		}
		if c.Short != tt.short || c.SpinUp != tt.spinUp || c.HasGPU != tt.gpu || c.GPUVRAMGB != tt.vram || c.RelativeValue != tt.value {
			t.Errorf("%s = %+v, want short %s spin-up %v gpu %v vram %d value %v", tt.name, c, tt.short, tt.spinUp, tt.gpu, tt.vram, tt.value)
		}
		if c.Description == "" || c.Limits.MemoryBytes <= 0 || c.Limits.NanoCPUs <= 0 || c.Limits.Pids <= 0 {
			t.Errorf("%s lacks a description or limits: %+v", tt.name, c)
		}
		if s, ok := r.LookupShort(tt.short); !ok || s.Name != tt.name {
			t.Errorf("LookupShort(%s) = %s, %v", tt.short, s.Name, ok)
		}
		sum += c.RelativeValue
	}
	if sum != 100 {
		t.Errorf("default relative values sum to %v, want 100", sum)
	}
	test, _ := r.Lookup(AlwaysOnTest)
	if test.Limits.NanoCPUs > 2e9 || test.Limits.MemoryBytes > 1<<30 {
		t.Errorf("always_on.test limits %+v do not fit a 2-core dev machine", test)
	}
	if c, _ := r.Lookup(protocol.DefaultExecutorClass); c.Short != "S" {
		t.Errorf("DefaultClass is %s", c.Name)
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Default().Lookup("always_on.gpu-80gb")
	if err == nil || !strings.Contains(err.Error(), "always_on.gpu-80gb") || !strings.Contains(err.Error(), string(AlwaysOnTest)) {
		t.Errorf("Lookup(unknown) error = %v; want it to name the class and list valid ones", err)
	}
	if _, ok := Default().LookupShort("X"); ok {
		t.Error("LookupShort(X) found a class")
	}
}

func TestRegistryIsImmutable(t *testing.T) {
	r := Default()
	cs := r.Classes()
	cs[0].RelativeValue = 1234
	if c, _ := r.Lookup(cs[0].Name); c.RelativeValue == 1234 {
		t.Error("changing Classes() changed the registry")
	}
	r2, err := r.WithRelativeValues(map[protocol.ExecutorClass]float64{AlwaysOnTest: 7})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Lookup(AlwaysOnTest); c.RelativeValue != 0 {
		t.Error("WithRelativeValues changed the original")
	}
	if c, _ := r2.Lookup(AlwaysOnTest); c.RelativeValue != 7 {
		t.Errorf("WithRelativeValues: got %v, want 7", c.RelativeValue)
	}
	if _, err := r.WithRelativeValues(map[protocol.ExecutorClass]float64{AlwaysOnTest: math.NaN()}); err == nil {
		t.Error("NaN relative value accepted")
	}
	if _, err := r.WithRelativeValues(map[protocol.ExecutorClass]float64{"nope": 1}); err == nil {
		t.Error("unknown class accepted")
	}
	if Default() == r || func() bool { c, _ := Default().Lookup(AlwaysOnTest); return c.RelativeValue != 0 }() {
		t.Error("Default() shares state between calls")
	}
}

func TestParseOverrides(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[protocol.ExecutorClass]float64 // relative values after applying, for the named classes
		wantErr string                             // substring of the error
	}{
		{name: "empty keeps defaults", in: "", want: map[protocol.ExecutorClass]float64{SpinUp4minGPU24GB: 98, AlwaysOnLLMA6000: 1}},
		{name: "blank keeps defaults", in: "  ", want: map[protocol.ExecutorClass]float64{SpinUp4minGPU24GB: 98}},
		{name: "upstream default string",
			in:   "spin_up-4min.gpu-24gb=98,always_on.llm.a6000=1,always_on.test=0,always_on.cpu.8c.16gb=1",
			want: map[protocol.ExecutorClass]float64{SpinUp4minGPU24GB: 98, AlwaysOnLLMA6000: 1, AlwaysOnTest: 0, AlwaysOnCPU8c16GB: 1, AlwaysOnGPU24GB: 0}},
		{name: "partial override keeps the rest", in: "always_on.cpu.8c.16gb=100",
			want: map[protocol.ExecutorClass]float64{AlwaysOnCPU8c16GB: 100, SpinUp4minGPU24GB: 98}},
		{name: "spaces and decimals", in: " always_on.test = 2.5 , always_on.gpu-24gb=1e1 ",
			want: map[protocol.ExecutorClass]float64{AlwaysOnTest: 2.5, AlwaysOnGPU24GB: 10}},
		{name: "trailing comma", in: "always_on.test=1,", wantErr: `entry 2 ""`},
		{name: "empty entry", in: "always_on.test=1,,always_on.gpu-24gb=1", wantErr: "entry 2"},
		{name: "no equals", in: "always_on.test", wantErr: `entry 1 "always_on.test"`},
		{name: "no name", in: "=3", wantErr: "no class name"},
		{name: "unknown class", in: "always_on.test=1,always_on.gpu-80gb=3", wantErr: `entry 2 "always_on.gpu-80gb=3"`},
		{name: "duplicate", in: "always_on.test=1,always_on.test=2", wantErr: "given twice"},
		{name: "not a number", in: "always_on.test=lots", wantErr: `value "lots"`},
		{name: "empty value", in: "always_on.test=", wantErr: `value ""`},
		{name: "negative", in: "always_on.test=-1", wantErr: `value "-1"`},
		{name: "NaN", in: "always_on.test=NaN", wantErr: `value "NaN"`},
		{name: "Inf", in: "always_on.test=+Inf", wantErr: `value "+Inf"`},
		{name: "two equals", in: "always_on.test=1=2", wantErr: `value "1=2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Default().ParseOverrides(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := r.RelativeValues()
			for name, v := range tt.want {
				if got[name] != v {
					t.Errorf("%s = %v, want %v", name, got[name], v)
				}
			}
		})
	}
}

func TestLoadJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		check   func(t *testing.T, r *Registry)
		wantErr string
	}{
		{
			name: "override value, limits and spin-up",
			in: `{"classes": {"always_on.test": {"relative_value": 5, "spin_up": "10s",
				"memory_bytes": 1073741824, "pids_limit": 64, "storage_gb": 3}}}`,
			check: func(t *testing.T, r *Registry) {
				c, _ := r.Lookup(AlwaysOnTest)
				want := Limits{MemoryBytes: 1 << 30, NanoCPUs: 1e9, Pids: 64, DiskBytes: 3 << 30}
				if c.RelativeValue != 5 || c.SpinUp != 10*time.Second || c.Limits != want {
					t.Errorf("always_on.test = %+v", c)
				}
				if c, _ := r.Lookup(SpinUp4minGPU24GB); c.RelativeValue != 98 {
					t.Errorf("untouched class changed: %+v", c)
				}
			},
		},
		{name: "empty object", in: `{}`, check: func(t *testing.T, r *Registry) {
			if len(r.Names()) != 5 {
				t.Error("classes lost")
			}
		}},
		{name: "unknown top-level field", in: `{"clases": {}}`, wantErr: `unknown field "clases"`},
		{name: "unknown class field", in: `{"classes": {"always_on.test": {"relative": 1}}}`, wantErr: `unknown field "relative"`},
		{name: "unknown class", in: `{"classes": {"always_on.gpu-80gb": {"relative_value": 1}}}`, wantErr: `unknown executor class "always_on.gpu-80gb"`},
		{name: "bad duration", in: `{"classes": {"always_on.test": {"spin_up": "soon"}}}`, wantErr: `duration "soon"`},
		{name: "numeric duration", in: `{"classes": {"always_on.test": {"spin_up": 3}}}`, wantErr: "must be a string"},
		{name: "negative value", in: `{"classes": {"always_on.test": {"relative_value": -1}}}`, wantErr: "relative_value is -1"},
		{name: "zero memory", in: `{"classes": {"always_on.test": {"memory_bytes": 0}}}`, wantErr: "memory_bytes is 0"},
		{name: "negative storage", in: `{"classes": {"always_on.test": {"storage_gb": -1}}}`, wantErr: "storage_gb is -1"},
		{name: "storage past int64", in: `{"classes": {"always_on.test": {"storage_gb": 9000000000}}}`, wantErr: "storage_gb is 9000000000"},
		{name: "gpu without count", in: `{"classes": {"always_on.test": {"has_gpu": true}}}`, wantErr: "gpu_count"},
		{name: "trailing data", in: `{} {}`, wantErr: "data after the JSON object"},
		{name: "not JSON", in: `relative_value=1`, wantErr: "class config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Default().LoadJSON([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, r)
		})
	}
}
