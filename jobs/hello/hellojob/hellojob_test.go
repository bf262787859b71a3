package hellojob

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	vol, outDir := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(vol, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "sub", "a.txt"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	var stdout, stderr bytes.Buffer
	code := run([]string{"x", "--dial", ln.Addr().String(), "--print-bytes", "150", "--stderr", "oops", "--exit", "3"}, &stdout, &stderr, vol, outDir)
	if code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	got := stdout.String()
	for _, want := range []string{
		"hello from horde x --dial " + ln.Addr().String(),
		"volume: sub/a.txt 3\n",
		"output: wrote hello.txt\n",
		"dial " + ln.Addr().String() + ": ok\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stdout lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "x") - strings.Count(got, "x --dial") - 0; n < 150 {
		t.Errorf("only %d x bytes printed", n)
	}
	if stderr.String() != "oops\nexiting with status 3\n" {
		t.Errorf("stderr = %q", stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(outDir, "hello.txt")); err != nil || !strings.HasPrefix(string(b), Greeting) {
		t.Errorf("hello.txt = %q, %v", b, err)
	}
}

func TestRunBadFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--sleep", "forever"}, &stdout, &stderr, "/nonexistent", "/nonexistent"); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "--sleep") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestCopyAndWrite(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.bin")
	if err := os.WriteFile(src, []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst, big := filepath.Join(dir, "out.bin"), filepath.Join(dir, "big.bin")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--copy", src + ":" + dst, "--write", big + ":1000000", "--copy", "/nonexistent:" + dst + "2"}, &stdout, &stderr, "/nonexistent", "/nonexistent"); code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	for _, want := range []string{"copy " + src + ": 7 bytes\n", "write " + big + ": 1000000 bytes\n", "copy /nonexistent: failed:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if b, _ := os.ReadFile(dst); string(b) != "payload" {
		t.Errorf("copy = %q", b)
	}
	if info, err := os.Stat(big); err != nil || info.Size() != 1000000 {
		t.Errorf("write: %v %v", info, err)
	}
	if code := run([]string{"--write", "nocolon"}, &stdout, &stderr, "/nonexistent", "/nonexistent"); code != 2 {
		t.Errorf("malformed --write: exit %d, want 2", code)
	}
}
