package hwclass

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/protocol"
)

// The classes under short names, for the tables below.
const (
	SpinUp4minGPU24GB = protocol.ExecutorClassSpinUp4minGPU24GB
	AlwaysOnGPU24GB   = protocol.ExecutorClassAlwaysOnGPU24GB
	AlwaysOnLLMA6000  = protocol.ExecutorClassAlwaysOnLLMA6000
	AlwaysOnTest      = protocol.ExecutorClassAlwaysOnTest
	AlwaysOnCPU8c16GB = protocol.ExecutorClassAlwaysOnCPU8c16GB
)

// counts is a manifest as a map, which the tables compare regardless of order.
type counts map[protocol.ExecutorClass]int

// manifest lists c sorted by class, so that a test's input is always the same.
func (c counts) manifest() protocol.Manifest {
	var m protocol.Manifest
	for _, class := range slices.Sorted(maps.Keys(c)) {
		m = append(m, protocol.ManifestEntry{Class: class, Count: c[class]})
	}
	return m
}

func countsOf(m protocol.Manifest) counts {
	c := counts{}
	for _, e := range m {
		c[e.Class] = e.Count
	}
	return c
}

func TestFormatManifest(t *testing.T) {
	tests := []struct {
		name    string
		in      counts
		want    string
		wantErr bool
	}{
		// reference/protocol.md §13: {S:2, A:3} → A3;S2; empty → <M:>.
		{"sorted by short code", counts{SpinUp4minGPU24GB: 2, AlwaysOnGPU24GB: 3}, "<M:A3;S2>", false},
		{"empty", counts{}, "<M:>", false},
		{"nil", nil, "<M:>", false},
		{"all classes", counts{SpinUp4minGPU24GB: 1, AlwaysOnGPU24GB: 2, AlwaysOnLLMA6000: 3, AlwaysOnTest: 4, AlwaysOnCPU8c16GB: 5}, "<M:A2;C5;L3;S1;T4>", false},
		{"zero kept", counts{AlwaysOnTest: 0}, "<M:T0>", false},
		{"large count", counts{AlwaysOnTest: 1234567}, "<M:T1234567>", false},
		{"unknown class", counts{"always_on.gpu-80gb": 1}, "", true},
		{"negative", counts{AlwaysOnTest: -1}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FormatManifest(tt.in.manifest())
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("FormatManifest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      counts
		wantFound bool
	}{
		{"upstream example", "<M:A3;S2>", counts{AlwaysOnGPU24GB: 3, SpinUp4minGPU24GB: 2}, true},
		{"single", "<M:L1>", counts{AlwaysOnLLMA6000: 1}, true},
		{"with other data before", "https://example.com<M:A5>", counts{AlwaysOnGPU24GB: 5}, true},
		{"with other data around", "foo<M:T2>bar", counts{AlwaysOnTest: 2}, true},
		{"empty envelope (pause)", "<M:>", counts{}, true},
		{"no envelope", "https://example.com", counts{}, false},
		{"empty commitment", "", counts{}, false},
		{"unclosed envelope", "<M:A3", counts{}, false},
		{"first envelope wins", "<M:A1><M:S9>", counts{AlwaysOnGPU24GB: 1}, true},
		{"spaces", "<M: A3 ; S 2 >", counts{AlwaysOnGPU24GB: 3, SpinUp4minGPU24GB: 2}, true},
		{"short fragments skipped", "<M:A;;S2;>", counts{SpinUp4minGPU24GB: 2}, true},
		{"unknown code skipped", "<M:X9;C4>", counts{AlwaysOnCPU8c16GB: 4}, true},
		{"lowercase code skipped", "<M:a3>", counts{}, true},
		{"bad count skipped", "<M:A3x;T1>", counts{AlwaysOnTest: 1}, true},
		{"negative count skipped", "<M:A-3;T1>", counts{AlwaysOnTest: 1}, true},
		{"duplicate code: last wins", "<M:A1;A7>", counts{AlwaysOnGPU24GB: 7}, true},
		{"zero count", "<M:S0>", counts{SpinUp4minGPU24GB: 0}, true},
		{"nested open is payload", "<M:A1<M:S2>", counts{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := ParseManifest(tt.in)
			if found != tt.wantFound || !maps.Equal(countsOf(got), tt.want) {
				t.Errorf("ParseManifest(%q) = %v, %v; want %v, %v", tt.in, got, found, tt.want, tt.wantFound)
			}
		})
	}
}

func TestMergeManifest(t *testing.T) {
	m := counts{SpinUp4minGPU24GB: 2, AlwaysOnGPU24GB: 3}
	tests := []struct {
		name    string
		in      string
		m       counts
		want    string
		wantErr bool
	}{
		// reference/protocol.md §13: merging into "foo<M:A1>bar" gives "foobar<M:…>".
		{"replace in the middle", "foo<M:A1>bar", m, "foobar<M:A3;S2>", false},
		{"empty commitment", "", m, "<M:A3;S2>", false},
		{"only an envelope", "<M:A1>", m, "<M:A3;S2>", false},
		{"other data kept", "https://example.com", m, "https://example.com<M:A3;S2>", false},
		{"every envelope removed", "<M:A1>x<M:S1>y", m, "xy<M:A3;S2>", false},
		{"spaces trimmed", "  foo  <M:A1>  ", counts{}, "foo<M:>", false},
		{"exactly 128 bytes", strings.Repeat("x", 128-len("<M:T1>")), counts{AlwaysOnTest: 1}, strings.Repeat("x", 122) + "<M:T1>", false},
		{"too long", strings.Repeat("x", 123), counts{AlwaysOnTest: 1}, "", true},
		{"bad manifest", "foo", counts{"nope": 1}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MergeManifest(tt.in, tt.m.manifest())
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("MergeManifest(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err == nil {
				if back, found := ParseManifest(got); !found || !maps.Equal(countsOf(back), tt.m) && len(tt.m) > 0 {
					t.Errorf("round trip: ParseManifest(%q) = %v, %v", got, back, found)
				}
			}
		})
	}
}
