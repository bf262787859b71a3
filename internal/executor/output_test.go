package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateOutput(t *testing.T) {
	short := strings.Repeat("a", MaxOutputChars)
	if TruncateOutput(short) != short {
		t.Error("text at the cap was truncated")
	}
	// Multi-byte characters count as one each.
	wide := strings.Repeat("ż", MaxOutputChars)
	if TruncateOutput(wide) != wide {
		t.Error("text of MaxOutputChars multi-byte characters was truncated")
	}
	long := "H" + strings.Repeat("ż", MaxOutputChars) + "T"
	got := TruncateOutput(long)
	if n := utf8.RuneCountInString(got); n != MaxOutputChars+5 {
		t.Errorf("truncated to %d characters, want %d", n, MaxOutputChars+5)
	}
	if !strings.HasPrefix(got, "Hż") || !strings.HasSuffix(got, "żT") || !strings.Contains(got, "ż ... ż") {
		t.Error("wrong splice")
	}
}

func TestReadOutputFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		text string
	}{
		{"small", "hello\n"},
		{"ascii-large", "S" + strings.Repeat("0123456789", 900_000) + "E"},
		{"multibyte-large", "S" + strings.Repeat("żółć", 1_500_000) + "E"},
		{"multibyte-mid", strings.Repeat("ż", MaxOutputChars+1)},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadOutputFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := TruncateOutput(tc.text); got != want {
			t.Errorf("%s: ReadOutputFile differs from TruncateOutput (len %d vs %d)", tc.name, len(got), len(want))
		}
	}
}

func TestWithDefaultTag(t *testing.T) {
	for in, want := range map[string]string{
		"alpine":                     "alpine:latest",
		"alpine:3.19":                "alpine:3.19",
		"localhost:5000/a/b":         "localhost:5000/a/b:latest",
		"localhost:5000/a/b:v1":      "localhost:5000/a/b:v1",
		"repo/img@sha256:abcd":       "repo/img@sha256:abcd",
		"horde-test/hello:123abc":    "horde-test/hello:123abc",
		"127.0.0.1:5055/probe/bb":    "127.0.0.1:5055/probe/bb:latest",
		"127.0.0.1:5055/probe/bb:v1": "127.0.0.1:5055/probe/bb:v1",
	} {
		if got := withDefaultTag(in); got != want {
			t.Errorf("withDefaultTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRuntimeIDHidesToken(t *testing.T) {
	token := "7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94-f0e1d2c3-b4a5-4697-8899-aabbccddeeff"
	id := runtimeID(token)
	if !strings.HasPrefix(id, "7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94-") || strings.Contains(id, "f0e1d2c3") {
		t.Errorf("runtimeID = %q", id)
	}
	if runtimeID(token+"x") == id {
		t.Error("different tokens share a runtime ID")
	}
	if got := jobUUIDFromToken(token); got != "7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94" {
		t.Errorf("jobUUIDFromToken = %q", got)
	}
	if got := jobUUIDFromToken("short"); got != "" {
		t.Errorf("jobUUIDFromToken(short) = %q", got)
	}
}
