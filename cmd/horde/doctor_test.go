package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/keys"
)

// freeLoopbackPort returns a loopback address nothing listens on now.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeConfig writes a role's configuration file into a fresh directory.
func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// doctorEnv keeps the tests off the machine's own wallets and role settings, and off any GPU
// tooling (the miner's GPU check then finds none and warns).
func doctorEnv(extra ...string) []string {
	return append([]string{"HOME=" + os.TempDir(), "PATH=/nonexistent"}, extra...)
}

func TestDoctorDockerEngineMissing(t *testing.T) {
	dir := t.TempDir()
	wallets := t.TempDir()
	kp, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.WriteHotkey(wallets, "w", "h", kp, ""); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "miner.toml", fmt.Sprintf(`listen = %q
data_dir = %q
[wallet]
path = %q
name = "w"
hotkey = "h"
[executors]
classes = { "always_on.test" = 1 }
`, freeLoopbackPort(t), filepath.Join(dir, "data"), wallets))
	sock := filepath.Join(dir, "no-docker.sock")
	r := horde(t, runOpts{env: doctorEnv("DOCKER_HOST=unix://" + sock)}, "doctor", "--role", "miner", "--config", cfg)
	if r.code != 1 {
		t.Fatalf("want exit 1:\n%s", r)
	}
	t.Logf("output:\n%s", r.stdout)
	wantContains(t, "stdout", r.stdout, "docker engine   FAIL    not reachable at unix://"+sock,
		"fix: install Docker Engine", "DOCKER_HOST", "1 failed")
	for _, line := range []string{"config          ok", "listen port     ok", "hotkey          ok", "database        ok"} {
		wantContains(t, "stdout", r.stdout, line)
	}
}

func TestDoctorHotkeyMissing(t *testing.T) {
	wallets := filepath.Join(t.TempDir(), "wallets")
	cfg := writeConfig(t, "validator.toml", fmt.Sprintf(`api_listen = %q
data_dir = %q
`, freeLoopbackPort(t), filepath.Join(t.TempDir(), "data")))
	r := horde(t, runOpts{env: doctorEnv()}, "doctor", "--role", "validator", "--config", cfg,
		"--wallet-path", wallets, "--wallet", "cold", "--hotkey", "hot")
	if r.code != 1 {
		t.Fatalf("want exit 1:\n%s", r)
	}
	t.Logf("output:\n%s", r.stdout)
	wantContains(t, "stdout", r.stdout,
		"hotkey          FAIL    no hotkey file at "+filepath.Join(wallets, "cold", "hotkeys", "hot"),
		"fix: `horde wallet new --wallet-path "+wallets+" --wallet cold --hotkey hot`",
		"1 failed")
}

func TestDoctorHealthyValidator(t *testing.T) {
	wallets := t.TempDir()
	kp, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.WriteHotkey(wallets, "w", "h", kp, ""); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, "validator.toml", fmt.Sprintf(`api_listen = %q
data_dir = %q
[wallet]
path = %q
name = "w"
hotkey = "h"
`, freeLoopbackPort(t), data, wallets))
	r := horde(t, runOpts{env: doctorEnv()}, "doctor", "--role", "validator", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%s", r)
	}
	for _, name := range []string{"config", "listen port", "hotkey", "chain", "database"} {
		wantContains(t, "stdout", r.stdout, fmt.Sprintf("%-16sok ", name))
	}
	wantContains(t, "stdout", r.stdout, kp.SS58(), "all checks passed")
	if strings.Contains(r.stdout, "FAIL") || strings.Contains(r.stdout, "WARN") {
		t.Errorf("a check did not pass:\n%s", r.stdout)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the doctor created the data directory %s (%v)", data, err)
	}
}

func TestDoctorUsage(t *testing.T) {
	r := horde(t, runOpts{env: doctorEnv()}, "doctor")
	if r.code != 2 {
		t.Fatalf("want exit 2:\n%s", r)
	}
	wantContains(t, "stderr", r.stderr, "horde doctor:", "miner, validator or facilitator")
}
