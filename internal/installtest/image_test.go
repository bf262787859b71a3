package installtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The server image: a minimal Debian (debootstrap --variant=minbase) with systemd as its init
// and sshd, as a freshly provisioned server would be. debootstrap takes minutes (seen here:
// 2 to 5, most of it downloading), so the image is built once per recipe and kept: its tag and
// its recipeLabel are the hash of everything it is made from, and a later run on the same
// engine reuses it. Building it is the only time the test reaches beyond loopback and its own
// network: the Debian mirror this machine's apt uses (and apt-get, when debootstrap is missing).

// serverPackages are the packages beyond minbase: systemd to boot, sshd to log in, and what
// the scripts and the test use on the server (ps, ip).
var serverPackages = []string{"systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "procps", "ca-certificates"}

// sshdConfig is the servers' sshd drop-in: root logs in with a key only, and the host key is
// the one the test copies in (a fresh one per server; the image holds none).
const sshdConfig = `# horde installtest servers: root by key only; the host key is copied in by the test.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
`

// serverImage returns the tag of the server image, building it when the engine has no image
// of the current recipe. Builds are serialised across test processes by a lock file.
func serverImage(t *testing.T) string {
	t.Helper()
	suite, mirror := debianSource()
	recipe := fmt.Sprintf("version %d\ndebootstrap --variant=minbase --include=%s %s ROOTFS %s\nrm etc/ssh/ssh_host_*\n: > etc/machine-id\netc/ssh/sshd_config.d/horde-installtest.conf:\n%s",
		recipeVersion, strings.Join(serverPackages, ","), suite, mirror, sshdConfig)
	sum := sha256Hex(recipe)
	tag := imageRepo + ":" + sum[:16]

	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "horde-installtest-image.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	// Another process building the same image: wait for it, then reuse its image.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }() // closing releases it too

	if label, err := dockerErr(nil, "image", "inspect", "--format", `{{index .Config.Labels "`+recipeLabel+`"}}`, tag); err == nil && label == sum {
		t.Logf("server image %s: cached (Debian %s from %s)", tag, suite, mirror)
		return tag
	}
	if os.Geteuid() != 0 {
		t.Skipf("the server image %s is not built yet, and debootstrap needs root", tag)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Log("installing debootstrap (apt-get)")
		install := exec.Command("apt-get", "install", "-y", "-qq", "debootstrap")
		install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("apt-get install debootstrap: %v\n%s", err, out)
		}
	}

	start := time.Now()
	dir, err := os.MkdirTemp("", "horde-installtest-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	rootfs := filepath.Join(dir, "rootfs")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	boot := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(serverPackages, ","), suite, rootfs, mirror)
	if out, err := boot.CombinedOutput(); err != nil {
		t.Fatalf("debootstrap %s from %s: %v\n%s", suite, mirror, err, tail(string(out), 40))
	}
	hostKeys, _ := filepath.Glob(filepath.Join(rootfs, "etc/ssh/ssh_host_*"))
	for _, k := range hostKeys {
		if err := os.Remove(k); err != nil {
			t.Fatal(err)
		}
	}
	// An empty machine-id: each server gets its own at boot, not one shared through the image.
	if err := os.WriteFile(filepath.Join(rootfs, "etc/machine-id"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/ssh/sshd_config.d/horde-installtest.conf"), []byte(sshdConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	debootstrapped := time.Since(start)

	// tar | docker import, through a pipe whose ends this process closes once both have
	// them, so that either one's exit ends the other.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pack := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", rootfs, "-cf", "-", ".")
	var packErr, impOut strings.Builder
	pack.Stdout, pack.Stderr = w, &packErr
	imp := exec.CommandContext(ctx, "docker", "import", "--change", `CMD ["/lib/systemd/systemd"]`,
		"--change", "LABEL "+recipeLabel+"="+sum, "-", tag)
	imp.Stdin, imp.Stdout, imp.Stderr = r, &impOut, &impOut
	startErr := errors.Join(pack.Start(), imp.Start())
	r.Close()
	w.Close()
	if startErr != nil {
		t.Fatal(startErr)
	}
	impErr, packWaitErr := imp.Wait(), pack.Wait()
	if impErr != nil {
		t.Fatalf("docker import: %v\n%s", impErr, impOut.String())
	}
	if packWaitErr != nil {
		t.Fatalf("tar of the root file system: %v\n%s", packWaitErr, packErr.String())
	}
	t.Logf("server image %s built in %s (debootstrap %s; Debian %s from %s)", tag, time.Since(start).Round(time.Second),
		debootstrapped.Round(time.Second), suite, mirror)

	// Images of older recipes are of no further use.
	if old, err := dockerErr(nil, "images", "--filter", "label="+recipeLabel, "--format", "{{.Repository}}:{{.Tag}}"); err == nil {
		for _, img := range strings.Fields(old) {
			if img != tag && strings.HasPrefix(img, imageRepo+":") {
				_, _ = dockerErr(nil, "rmi", img)
			}
		}
	}
	return tag
}

// debianSource returns the Debian suite and mirror to debootstrap from: the host's own release
// and the mirror its apt uses (from /etc/apt/sources.list and sources.list.d, one-line or
// deb822), which is the one this machine is known to reach. A host that is not Debian gets
// bookworm from deb.debian.org.
func debianSource() (suite, mirror string) {
	suite, mirror = "bookworm", "http://deb.debian.org/debian"
	osr, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return suite, mirror
	}
	vals := map[string]string{}
	for line := range strings.Lines(string(osr)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			vals[k] = strings.Trim(v, `"'`)
		}
	}
	if vals["ID"] != "debian" || vals["VERSION_CODENAME"] == "" {
		return suite, mirror
	}
	suite = vals["VERSION_CODENAME"]
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	for _, f := range files {
		if m := mirrorIn(f, suite); m != "" {
			return suite, m
		}
	}
	return suite, mirror
}

// mirrorIn returns the first URI in the apt sources file f that serves suite from a Debian
// archive (a path ending in /debian, so not debian-security), or "".
func mirrorIn(f, suite string) string {
	fh, err := os.Open(f)
	if err != nil {
		return ""
	}
	defer fh.Close()
	isDebian := func(uri string) bool {
		uri = strings.TrimRight(uri, "/")
		return (strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")) && strings.HasSuffix(uri, "/debian")
	}
	var uris, suites []string
	deb := false
	flush := func() string {
		defer func() { uris, suites, deb = nil, nil, false }()
		if !deb {
			return ""
		}
		for _, s := range suites {
			if s != suite {
				continue
			}
			for _, u := range uris {
				if isDebian(u) {
					return strings.TrimRight(u, "/")
				}
			}
		}
		return ""
	}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case line == "":
			if m := flush(); m != "" {
				return m
			}
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "deb "): // one-line style: deb [options] URI suite components
			rest := f[1:]
			if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
				for len(rest) > 0 && !strings.HasSuffix(rest[0], "]") {
					rest = rest[1:]
				}
				if len(rest) > 0 {
					rest = rest[1:]
				}
			}
			if len(rest) >= 2 && rest[1] == suite && isDebian(rest[0]) {
				return strings.TrimRight(rest[0], "/")
			}
		case strings.HasPrefix(line, "Types:"):
			deb = strings.Contains(" "+line+" ", " deb ")
		case strings.HasPrefix(line, "URIs:"):
			uris = f[1:]
		case strings.HasPrefix(line, "Suites:"):
			suites = f[1:]
		}
	}
	return flush()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
