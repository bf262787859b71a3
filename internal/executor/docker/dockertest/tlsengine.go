package dockertest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// TLSEngine is a second Docker engine started by the test: listening on a loopback TCP port
// with mutual TLS (and on a unix socket of its own), its data, exec root and config in a
// temporary directory, with no bridge and no iptables, ip-forward or masquerading changes, so
// that the host's engine and networking are untouched.
type TLSEngine struct {
	// Host is "tcp://127.0.0.1:PORT".
	Host string
	// Socket is the path of its unix socket ("unix://" + Socket reaches it without TLS).
	Socket string
	// CertDir holds the client's ca.pem, cert.pem and key.pem (as DOCKER_CERT_PATH wants);
	// CA, Cert and Key are their paths.
	CertDir       string
	CA, Cert, Key string
	// Client talks to Host over TLS; closed when the test ends.
	Client *client.Client
	// Driver is the storage driver the engine runs (overlay2, else fuse-overlayfs, else vfs).
	Driver string
	// StartTime is how long the last start took until the engine answered.
	StartTime time.Duration

	dir    string
	args   []string
	cmd    *exec.Cmd
	exited chan error
	logf   string
}

// StartTLSEngine starts a TLSEngine and stops and removes it when the test ends. It needs
// root and dockerd; without them, or when dockerd cannot start, the test is skipped saying why.
func StartTLSEngine(t testing.TB) *TLSEngine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a second Docker engine needs root (dockerd)")
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		t.Skipf("a second Docker engine needs dockerd: %v", err)
	}
	// Short paths: the exec root holds containerd's unix sockets, limited to 108 bytes.
	dir, err := os.MkdirTemp("", "hde-")
	if err != nil {
		t.Fatal(err)
	}
	e := &TLSEngine{dir: dir, Socket: filepath.Join(dir, "d.sock"), CertDir: filepath.Join(dir, "client"), logf: filepath.Join(dir, "dockerd.log")}
	t.Cleanup(func() { e.cleanup(t) })
	serverDir := filepath.Join(dir, "server")
	for _, d := range []string{e.CertDir, serverDir, filepath.Join(dir, "x")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeCerts(serverDir, e.CertDir); err != nil {
		t.Fatal(err)
	}
	e.CA, e.Cert, e.Key = filepath.Join(e.CertDir, "ca.pem"), filepath.Join(e.CertDir, "cert.pem"), filepath.Join(e.CertDir, "key.pem")
	// An empty config file: the host's /etc/docker/daemon.json may set what the flags set.
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	e.Host = fmt.Sprintf("tcp://127.0.0.1:%d", port)
	base := []string{"--config-file", cfg, "--exec-root", filepath.Join(dir, "x"), "--pidfile", filepath.Join(dir, "d.pid"),
		"--host", e.Host, "--host", "unix://" + e.Socket,
		"--tlsverify", "--tlscacert", filepath.Join(serverDir, "ca.pem"),
		"--tlscert", filepath.Join(serverDir, "cert.pem"), "--tlskey", filepath.Join(serverDir, "key.pem"),
		"--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"}
	e.Client, err = client.NewClientWithOpts(client.WithHost(e.Host), client.WithTLSClientConfig(e.CA, e.Cert, e.Key), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Client.Close() })

	var failures []string
	for _, driver := range []string{"overlay2", "fuse-overlayfs", "vfs"} {
		// A data root per driver: an engine refuses a data root another driver filled.
		e.args = append(slices.Clone(base), "--data-root", filepath.Join(dir, "data-"+driver), "--storage-driver", driver)
		if err := e.start(); err != nil {
			failures = append(failures, driver+": "+err.Error())
			continue
		}
		e.Driver = driver
		return e
	}
	t.Skipf("dockerd could not start a second engine with any storage driver:\n%s", strings.Join(failures, "\n"))
	return nil
}

// Stop stops the engine (SIGTERM; SIGKILL after 20 s); Restart starts it again on the same
// port, data and certificates.
func (e *TLSEngine) Stop(t testing.TB) {
	t.Helper()
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
}

// Restart starts the stopped engine again, with the same flags.
func (e *TLSEngine) Restart(t testing.TB) {
	t.Helper()
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
}

func (e *TLSEngine) start() error {
	logf, err := os.OpenFile(e.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	began := time.Now()
	cmd := exec.Command("dockerd", e.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	e.cmd, e.exited = cmd, exited
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := e.Client.Ping(pctx)
		pcancel()
		if err == nil {
			e.StartTime = time.Since(began)
			return nil
		}
		select {
		case werr := <-exited:
			e.cmd = nil
			log, _ := os.ReadFile(e.logf)
			return fmt.Errorf("dockerd exited: %w\n%s", errors.Join(werr, err), tail(log, 1500))
		case <-ctx.Done():
			_ = e.stop()
			log, _ := os.ReadFile(e.logf)
			return fmt.Errorf("dockerd not answering after 30 s: %w\n%s", err, tail(log, 1500))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (e *TLSEngine) stop() error {
	if e.cmd == nil {
		return nil
	}
	cmd := e.cmd
	e.cmd = nil
	// dockerd stops its containerd and containers on SIGTERM.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
		return nil
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-e.exited
		return errors.New("dockerd did not stop within 20 s of SIGTERM and was killed")
	}
}

// cleanup stops the engine, unmounts what it left mounted under its directory (network
// namespaces, overlay layers) and removes the directory.
func (e *TLSEngine) cleanup(t testing.TB) {
	if err := e.stop(); err != nil {
		t.Error(err)
	}
	mounts, err := mountsUnder(e.dir)
	if err != nil {
		t.Error(err)
	}
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(e.dir); err != nil {
		t.Errorf("remove the second engine's directory: %v", err)
	}
}

// mountsUnder lists the mount points under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		// /proc/self/mounts escapes spaces and the like as \040; our paths have none.
		if mp := fields[1]; mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out, sc.Err()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeCerts makes a throwaway CA, a server certificate for 127.0.0.1 and localhost, and a
// client certificate; it writes ca.pem, cert.pem and key.pem into serverDir and clientDir.
func writeCerts(serverDir, clientDir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "horde test engine CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	leaf := func(dir string, serial int64, tmpl *x509.Certificate) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		for name, block := range map[string]*pem.Block{
			"ca.pem": {Type: "CERTIFICATE", Bytes: caDER}, "cert.pem": {Type: "CERTIFICATE", Bytes: der},
			"key.pem": {Type: "PRIVATE KEY", Bytes: keyDER},
		} {
			if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
				return err
			}
		}
		return nil
	}
	if err := leaf(serverDir, 2, &x509.Certificate{
		Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return err
	}
	return leaf(clientDir, 3, &x509.Certificate{
		Subject: pkix.Name{CommonName: "horde test client"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}
