package dockertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// QuotaEngine is a private Docker engine whose storage driver enforces per-container storage
// quotas (--storage-opt size): btrfs on a loop-mounted file system made for the test.
type QuotaEngine struct {
	// Host is the engine's address, "unix://…/docker.sock".
	Host string
	// Client talks to it; it is closed when the test ends.
	Client *client.Client
}

// StartQuotaEngine starts a dockerd with the btrfs storage driver on a fresh 2 GiB sparse
// btrfs image mounted through a loop device, with no bridge and no iptables changes, and stops
// and removes all of it when the test ends. It needs root, a loop device, btrfs support in the
// kernel, mkfs.btrfs (btrfs-progs) and dockerd; without them the test is skipped, saying which
// is missing (scripts/test.sh installs btrfs-progs).
func StartQuotaEngine(t testing.TB) *QuotaEngine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a quota-enforcing Docker engine needs root (loop mount, dockerd)")
	}
	for _, tool := range []string{"mkfs.btrfs", "dockerd", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("a quota-enforcing Docker engine needs %s: %v", tool, err)
		}
	}
	// Short paths: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "horde-qe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	img, mnt, execRoot := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt"), filepath.Join(dir, "x")
	for _, d := range []string{mnt, execRoot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 2<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.btrfs: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("loop-mount a btrfs image (kernel without btrfs or loop devices?): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})

	// An empty config file: the host's /etc/docker/daemon.json may set what the flags set.
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("dockerd", "--config-file", cfg, "--data-root", filepath.Join(mnt, "docker"),
		"--exec-root", execRoot, "--pidfile", filepath.Join(dir, "dockerd.pid"), "--host", "unix://"+sock,
		"--storage-driver", "btrfs", "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// dockerd stops its containerd and containers on SIGTERM.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Ping(pctx)
		pcancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd exited: %v\n%s", errors.Join(werr, err), tail(log, 2000))
		case <-ctx.Done():
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd not answering after 30 s: %v\n%s", err, tail(log, 2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	info, err := cli.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Driver != "btrfs" {
		t.Fatalf("the test engine runs storage driver %q, want btrfs", info.Driver)
	}
	return &QuotaEngine{Host: "unix://" + sock, Client: cli}
}

// tail is the last n bytes of a log, for a failure message.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
