package benchjob

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func TestSolve(t *testing.T) {
	salt := []byte("salt")
	for _, workers := range []int{1, 3, 8} {
		for _, secret := range []uint64{0, 1, 4242, 9999} {
			x, err := Solve(Task{Salt: salt, Hash: Digest(salt, secret), Space: 10000}, workers)
			if err != nil || x != secret {
				t.Errorf("%d workers, secret %d: Solve = %d, %v", workers, secret, x, err)
			}
		}
		if _, err := Solve(Task{Salt: salt, Hash: Digest(salt, 4242), Space: 100}, workers); err != ErrNotFound {
			t.Errorf("%d workers, outside the space: %v", workers, err)
		}
	}
}

func TestProgram(t *testing.T) {
	salt := []byte("salt")
	secrets := []uint64{17, 4242, 0}
	var hashes []string
	for i, s := range secrets {
		h := Digest(TaskSalt(salt, i), s)
		hashes = append(hashes, hex.EncodeToString(h[:]))
	}
	var out, errb bytes.Buffer
	code := Main([]string{"--salt", hex.EncodeToString(salt), "--hashes", strings.Join(hashes, ","), "--space", "10000"}, &out, &errb)
	if code != 0 || out.String() != "17\n4242\n0\n" {
		t.Errorf("Main = %d %q %q", code, out.String(), errb.String())
	}
	for _, bad := range [][]string{
		{"--salt", "00", "--hashes", "zz", "--space", "10"},
		{"--salt", "xx", "--hashes", hashes[0], "--space", "10"},
		{"--salt", "00", "--hashes", hashes[0] + ",", "--space", "10"},
	} {
		if code := Main(bad, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}

func BenchmarkSolve(b *testing.B) {
	salt := []byte("salt")
	task := Task{Salt: salt, Hash: Digest(salt, 99_999), Space: 100_000}
	for b.Loop() {
		if _, err := Solve(task, 1); err != nil {
			b.Fatal(err)
		}
	}
}
