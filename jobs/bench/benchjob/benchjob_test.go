package benchjob

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func TestSolveAndMain(t *testing.T) {
	salt := []byte("salt")
	h := Digest(salt, 4242)
	if x, err := Solve(Task{Salt: salt, Hash: h, Space: 10000}); err != nil || x != 4242 {
		t.Fatalf("Solve = %d, %v", x, err)
	}
	if _, err := Solve(Task{Salt: salt, Hash: h, Space: 100}); err != ErrNotFound {
		t.Errorf("outside the space: %v", err)
	}
	var out, errb bytes.Buffer
	code := Main([]string{"--salt", hex.EncodeToString(salt), "--hash", hex.EncodeToString(h[:]), "--space", "10000"}, &out, &errb)
	if code != 0 || strings.TrimSpace(out.String()) != "4242" {
		t.Errorf("Main = %d %q %q", code, out.String(), errb.String())
	}
	if code := Main([]string{"--hash", "zz"}, &out, &errb); code != 2 {
		t.Errorf("bad hash: exit %d", code)
	}
}

func BenchmarkSolve(b *testing.B) {
	salt := []byte("salt")
	task := Task{Salt: salt, Hash: Digest(salt, 99_999), Space: 100_000}
	for b.Loop() {
		if _, err := Solve(task); err != nil {
			b.Fatal(err)
		}
	}
}
