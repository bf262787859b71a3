package hwclass

import (
	"maps"
	"strings"
	"testing"
)

func TestFormatManifest(t *testing.T) {
	tests := []struct {
		name    string
		in      Manifest
		want    string
		wantErr bool
	}{
		// reference/protocol.md §13: {S:2, A:3} → A3;S2; empty → <M:>.
		{"sorted by short code", Manifest{SpinUp4minGPU24GB: 2, AlwaysOnGPU24GB: 3}, "<M:A3;S2>", false},
		{"empty", Manifest{}, "<M:>", false},
		{"nil", nil, "<M:>", false},
		{"all classes", Manifest{SpinUp4minGPU24GB: 1, AlwaysOnGPU24GB: 2, AlwaysOnLLMA6000: 3, AlwaysOnTest: 4, AlwaysOnCPU8c16GB: 5}, "<M:A2;C5;L3;S1;T4>", false},
		{"zero kept", Manifest{AlwaysOnTest: 0}, "<M:T0>", false},
		{"large count", Manifest{AlwaysOnTest: 1234567}, "<M:T1234567>", false},
		{"unknown class", Manifest{"always_on.gpu-80gb": 1}, "", true},
		{"negative", Manifest{AlwaysOnTest: -1}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FormatManifest(tt.in)
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
		want      Manifest
		wantFound bool
	}{
		{"upstream example", "<M:A3;S2>", Manifest{AlwaysOnGPU24GB: 3, SpinUp4minGPU24GB: 2}, true},
		{"single", "<M:L1>", Manifest{AlwaysOnLLMA6000: 1}, true},
		{"with other data before", "https://example.com<M:A5>", Manifest{AlwaysOnGPU24GB: 5}, true},
		{"with other data around", "foo<M:T2>bar", Manifest{AlwaysOnTest: 2}, true},
		{"empty envelope (pause)", "<M:>", Manifest{}, true},
		{"no envelope", "https://example.com", Manifest{}, false},
		{"empty commitment", "", Manifest{}, false},
		{"unclosed envelope", "<M:A3", Manifest{}, false},
		{"first envelope wins", "<M:A1><M:S9>", Manifest{AlwaysOnGPU24GB: 1}, true},
		{"spaces", "<M: A3 ; S 2 >", Manifest{AlwaysOnGPU24GB: 3, SpinUp4minGPU24GB: 2}, true},
		{"short fragments skipped", "<M:A;;S2;>", Manifest{SpinUp4minGPU24GB: 2}, true},
		{"unknown code skipped", "<M:X9;C4>", Manifest{AlwaysOnCPU8c16GB: 4}, true},
		{"lowercase code skipped", "<M:a3>", Manifest{}, true},
		{"bad count skipped", "<M:A3x;T1>", Manifest{AlwaysOnTest: 1}, true},
		{"negative count skipped", "<M:A-3;T1>", Manifest{AlwaysOnTest: 1}, true},
		{"duplicate code: last wins", "<M:A1;A7>", Manifest{AlwaysOnGPU24GB: 7}, true},
		{"zero count", "<M:S0>", Manifest{SpinUp4minGPU24GB: 0}, true},
		{"nested open is payload", "<M:A1<M:S2>", Manifest{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := ParseManifest(tt.in)
			if found != tt.wantFound || !maps.Equal(got, tt.want) {
				t.Errorf("ParseManifest(%q) = %v, %v; want %v, %v", tt.in, got, found, tt.want, tt.wantFound)
			}
		})
	}
}

func TestMergeManifest(t *testing.T) {
	m := Manifest{SpinUp4minGPU24GB: 2, AlwaysOnGPU24GB: 3}
	tests := []struct {
		name    string
		in      string
		m       Manifest
		want    string
		wantErr bool
	}{
		// reference/protocol.md §13: merging into "foo<M:A1>bar" gives "foobar<M:…>".
		{"replace in the middle", "foo<M:A1>bar", m, "foobar<M:A3;S2>", false},
		{"empty commitment", "", m, "<M:A3;S2>", false},
		{"only an envelope", "<M:A1>", m, "<M:A3;S2>", false},
		{"other data kept", "https://example.com", m, "https://example.com<M:A3;S2>", false},
		{"every envelope removed", "<M:A1>x<M:S1>y", m, "xy<M:A3;S2>", false},
		{"spaces trimmed", "  foo  <M:A1>  ", Manifest{}, "foo<M:>", false},
		{"exactly 128 bytes", strings.Repeat("x", 128-len("<M:T1>")), Manifest{AlwaysOnTest: 1}, strings.Repeat("x", 122) + "<M:T1>", false},
		{"too long", strings.Repeat("x", 123), Manifest{AlwaysOnTest: 1}, "", true},
		{"bad manifest", "foo", Manifest{"nope": 1}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MergeManifest(tt.in, tt.m)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("MergeManifest(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err == nil {
				if back, found := ParseManifest(got); !found || !maps.Equal(back, tt.m) && len(tt.m) > 0 {
					t.Errorf("round trip: ParseManifest(%q) = %v, %v", got, back, found)
				}
			}
		})
	}
}
