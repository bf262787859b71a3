package codegen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTagErrors: a model the generator cannot write is an error naming the type, the field
// and the problem, never silently skipped code.
func TestTagErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"//wire:message ValidatorToMiner\ntype M struct {\n\tA string `wire:\"a,optinal\"`\n}", `field A: unknown option "optinal"`},
		{"//wire:message\ntype M struct{}", "names no union"},
		{"//wire:message Sideways\ntype M struct{}", `unknown directive word "Sideways"`},
		{"//wire:model\ntype M struct {\n\tA complex128 `wire:\"a\"`\n}", "type complex128 has no codec"},
		{"//wire:model\ntype M struct {\n\tA json.RawMessage `wire:\"a\"`\n}", "needs object or any"},
		{"//wire:model\ntype M struct {\n\t_ struct{} `wire:\"a\"`\n}", "a blank field must be a literal"},
		{"//wire:model forbid\ntype M struct {\n\tX OrderedMap[json.RawMessage] `wire:\",extra\"`\n}", "both keep and forbid"},
		{"//wire:thing\ntype M struct{}", "unknown directive //wire:thing"},
	} {
		dir := t.TempDir()
		src := "package p\n\nimport \"encoding/json\"\n\nvar _ json.RawMessage\n\ntype OrderedMap[V any] struct{}\n\n" + tc.src + "\n"
		if err := os.WriteFile(filepath.Join(dir, "m.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Generate(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "M") {
			t.Errorf("%s\n→ %v, want an error naming M and %q", tc.src, err, tc.want)
		}
	}
}
