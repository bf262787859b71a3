package doctor

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/backend"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/chain/simserver"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/keys"
)

// fakeGPUs is a Detector with fixed answers.
type fakeGPUs struct {
	gpus    []gpu.GPU
	err     error
	toolkit string
}

func (f fakeGPUs) GPUs(context.Context) ([]gpu.GPU, error) { return f.gpus, f.err }
func (f fakeGPUs) ToolkitVersion(context.Context) (string, error) {
	if f.toolkit == "" {
		return "", gpu.ErrNoToolkit
	}
	return f.toolkit, nil
}

func engine(runtimes ...string) func(context.Context) (Engine, error) {
	return func(context.Context) (Engine, error) {
		return Engine{Host: "unix:///fake.sock", Version: "28.0.0", APIVersion: "1.48", Runtimes: runtimes}, nil
	}
}

// writeHotkey writes //Alice's hotkey as wallet w, hotkey h under a fresh wallets directory.
func writeHotkey(t *testing.T) (dir string, kp *keys.Keypair) {
	t.Helper()
	dir = t.TempDir()
	kp, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.WriteHotkey(dir, "w", "h", kp, ""); err != nil {
		t.Fatal(err)
	}
	return dir, kp
}

// minerTarget is a healthy miner's target on the embedded chain.
func minerTarget(t *testing.T) Target {
	dir, _ := writeHotkey(t)
	data := t.TempDir()
	return Target{
		Role: Miner, Parsed: true, EnvPrefix: "HORDE_MINER", ListenKey: "listen", Listen: "127.0.0.1:0",
		WalletPath: dir, WalletName: "w", HotkeyName: "h", Chain: backend.DefaultTable(),
		NeedRegistration: true, NeedDocker: true, DSN: "sqlite:" + filepath.Join(data, "db", "miner.db"),
	}
}

func byName(t *testing.T, rs []Result, name string) Result {
	t.Helper()
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no %q check in %v", name, rs)
	return Result{}
}

func want(t *testing.T, rs []Result, name string, status Status, contains ...string) {
	t.Helper()
	r := byName(t, rs, name)
	if r.Status != status {
		t.Errorf("%s: %s (%s; fix %q), want %s", name, r.Status, r.Found, r.Fix, status)
	}
	for _, c := range contains {
		if !strings.Contains(r.Found+"\n"+r.Fix, c) {
			t.Errorf("%s: %q / fix %q does not contain %q", name, r.Found, r.Fix, c)
		}
	}
}

func TestHealthyMinerCPUOnly(t *testing.T) {
	tg := minerTarget(t)
	rs := Run(t.Context(), tg, Options{Engine: engine("runc"), GPUs: fakeGPUs{}})
	want(t, rs, "config", OK)
	want(t, rs, "docker engine", OK, "28.0.0", "unix:///fake.sock")
	want(t, rs, "gpus", Warn, "CPU classes")
	want(t, rs, "nvidia toolkit", Skipped)
	want(t, rs, "listen port", OK)
	want(t, rs, "hotkey", OK, "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
	want(t, rs, "chain", OK, "embedded")
	want(t, rs, "database", OK, "does not exist yet")
	if Failed(rs) {
		t.Errorf("Failed = true for %v", rs)
	}
	// The database check proves the file can be created but leaves nothing behind.
	if _, err := os.Stat(filepath.Dir(strings.TrimPrefix(tg.DSN, "sqlite:"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the database check created its directory: %v", err)
	}
}

func TestDockerUnreachable(t *testing.T) {
	rs := Run(t.Context(), minerTarget(t), Options{
		Engine: func(context.Context) (Engine, error) {
			return Engine{Host: "unix:///nope.sock"}, errors.New("Cannot connect to the Docker daemon")
		},
		GPUs: fakeGPUs{gpus: []gpu.GPU{{Name: "H200", MemoryMiB: 141000}}, toolkit: "1.17.8"},
	})
	want(t, rs, "docker engine", Fail, "unix:///nope.sock", "install Docker Engine", "DOCKER_HOST")
	want(t, rs, "nvidia toolkit", Fail, "engine did not answer")
	if !Failed(rs) {
		t.Error("Failed = false")
	}
	rs = Run(t.Context(), minerTarget(t), Options{
		Engine: func(context.Context) (Engine, error) {
			return Engine{Host: "unix:///var/run/docker.sock"}, errors.New("dial unix /var/run/docker.sock: connect: permission denied")
		},
		GPUs: fakeGPUs{},
	})
	want(t, rs, "docker engine", Fail, "usermod -aG docker")
}

func TestDockerHosts(t *testing.T) {
	tg := minerTarget(t)
	rs := Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "docker hosts", Skipped)

	// Real dials, to unix sockets only: one engine that is not there, one fake that answers.
	dir := t.TempDir()
	tg.DockerHosts = []DockerHost{{Name: "gone", Endpoint: "unix://" + filepath.Join(dir, "gone.sock")}, {Name: "b", Endpoint: "unix:///b.sock"}}
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{},
		HostEngine: func(ctx context.Context, h DockerHost) (Engine, error) {
			if h.Name == "gone" {
				return HostEngine(ctx, h)
			}
			return Engine{Version: "27.1.0", Runtimes: []string{"nvidia", "runc"}}, nil
		}})
	want(t, rs, "docker hosts", Fail, "gone (unix://"+dir, "not reachable", "b: Docker 27.1.0 at unix:///b.sock, nvidia runtime", "executors.hosts")
}

func TestToolkit(t *testing.T) {
	h200 := []gpu.GPU{{Name: "H200", MemoryMiB: 141000, Driver: "570"}}
	for _, tc := range []struct {
		name     string
		gpus     fakeGPUs
		runtimes []string
		status   Status
		contains string
	}{
		{"ok", fakeGPUs{gpus: h200, toolkit: "1.17.8"}, []string{"nvidia", "runc"}, OK, "nvidia runtime"},
		{"missing", fakeGPUs{gpus: h200}, []string{"nvidia", "runc"}, Fail, "nvidia-ctk runtime configure"},
		{"too old", fakeGPUs{gpus: h200, toolkit: "1.16.2"}, []string{"nvidia"}, Fail, gpu.MinToolkitVersion},
		{"no runtime", fakeGPUs{gpus: h200, toolkit: "1.17.8"}, []string{"runc"}, Fail, "no nvidia runtime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := Run(t.Context(), minerTarget(t), Options{Engine: engine(tc.runtimes...), GPUs: tc.gpus})
			want(t, rs, "gpus", OK, "H200")
			want(t, rs, "nvidia toolkit", tc.status, tc.contains)
		})
	}
	tg := minerTarget(t)
	tg.GPUClasses = []string{"always_on.gpu-24gb"}
	rs := Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "gpus", Warn, "always_on.gpu-24gb")
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{err: errors.New("NVIDIA-SMI has failed")}})
	want(t, rs, "gpus", Fail, "NVIDIA-SMI has failed", "NVIDIA driver")
}

func TestMissingHotkey(t *testing.T) {
	tg := minerTarget(t)
	tg.WalletPath = t.TempDir()
	rs := Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "hotkey", Fail, "no hotkey file at "+filepath.Join(tg.WalletPath, "w", "hotkeys", "h"),
		"`horde wallet new --wallet-path "+tg.WalletPath+" --wallet w --hotkey h`")

	// A file that is there but is no hotkey needs replacing, not creating.
	if err := os.MkdirAll(filepath.Join(tg.WalletPath, "w", "hotkeys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tg.WalletPath, "w", "hotkeys", "h"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "hotkey", Fail, "valid bittensor hotkey file")
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tg := minerTarget(t)
	tg.Listen = ln.Addr().String()
	tg.StatusSocket = filepath.Join(t.TempDir(), "miner.sock")
	rs := Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "listen port", Fail, "in use by another process", "ss -ltnp")

	// The running miner answers on its status socket: the port is its own.
	sock, err := net.Listen("unix", tg.StatusSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "listen port", OK, "served by the running miner")

	// TEST-NET-3 is never an address of this machine; binding to it sends nothing.
	tg.Listen = "203.0.113.7:8000"
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "listen port", Fail, "not an address of this machine", "0.0.0.0:8000")
}

func TestConfigNotParsed(t *testing.T) {
	tg := minerTarget(t)
	tg.Parsed, tg.ConfigFile, tg.ConfigErr = false, "miner.toml", errors.New("config: miner.toml: line 3: bad")
	rs := Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "config", Fail, "line 3", "examples/miner.toml")
	for _, name := range []string{"listen port", "hotkey", "chain", "database"} {
		want(t, rs, name, Skipped, "did not load")
	}
	want(t, rs, "docker engine", OK)
}

// simChain serves a simulated chain on loopback with hk registered, serving axon, and //Dave
// as a validator; //Bob is not registered.
func simChain(t *testing.T, hk chain.Hotkey, axon netip.AddrPort) string {
	t.Helper()
	dave, err := keys.FromURI("//Dave")
	if err != nil {
		t.Fatal(err)
	}
	c, err := sim.New(sim.Genesis{NetUID: 12, Neurons: []sim.NeuronSpec{
		{Hotkey: chain.Hotkey(dave.SS58()), Stake: 1000e9},
		{Hotkey: hk, Stake: 10e9, Axon: chain.AxonInfo{IP: axon.Addr(), Port: axon.Port(), Protocol: 4}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := simserver.New(simserver.Config{Chain: c})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts.URL
}

func TestChainRegistrationAxon(t *testing.T) {
	tg := minerTarget(t)
	kp, _ := keys.FromURI("//Alice")
	axon := netip.MustParseAddrPort("203.0.113.7:8000")
	tg.Chain.URL = simChain(t, chain.Hotkey(kp.SS58()), axon)

	tg.ExternalAddress = axon.String()
	rs := Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "chain", OK, "head block")
	want(t, rs, "registration", OK, "uid 1")
	want(t, rs, "axon", OK, axon.String())

	tg.ExternalAddress = "203.0.113.8:8000"
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "axon", Warn, "203.0.113.7:8000", "btcli axon set")

	// Another hotkey is not registered.
	tg.WalletPath, _ = writeBob(t)
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "registration", Fail, "not registered on netuid 12", "btcli subnet register --netuid 12 --wallet.name w --wallet.hotkey h")
	want(t, rs, "axon", Skipped)

	// A chain server that is not there: a closed loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg.Chain.URL = "http://" + ln.Addr().String()
	ln.Close()
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}, Timeout: 2 * time.Second})
	want(t, rs, "chain", Fail, "[chain] url")
	want(t, rs, "registration", Skipped, "did not answer")
}

func writeBob(t *testing.T) (string, *keys.Keypair) {
	t.Helper()
	dir := t.TempDir()
	kp, err := keys.FromURI("//Bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.WriteHotkey(dir, "w", "h", kp, ""); err != nil {
		t.Fatal(err)
	}
	return dir, kp
}

func TestDatabase(t *testing.T) {
	tg := minerTarget(t)
	tg.DSN = filepath.Join(t.TempDir(), "miner.db")
	if err := os.WriteFile(tg.DSN, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rs := Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "database", OK, "opens (sqlite)")

	ro := t.TempDir()
	if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o700) })
	if os.Geteuid() != 0 {
		tg.DSN = "sqlite:" + filepath.Join(ro, "sub", "miner.db")
		rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
		want(t, rs, "database", Fail, "cannot be created", "PostgreSQL DSN")
	}
	tg.DSN = "mysql://x"
	rs = Run(t.Context(), tg, Options{Engine: engine(), GPUs: fakeGPUs{}})
	want(t, rs, "database", Fail, "unsupported")
}

func TestSQLiteFileAndRedact(t *testing.T) {
	for dsn, want := range map[string]string{
		"sqlite:/a/b.db": "/a/b.db", "sqlite:///a/b.db": "/a/b.db", "b.db": "b.db", "SQLite:x.db": "x.db",
		"sqlite::memory:": "", "postgres://u:p@h/db": "", "": "",
	} {
		if got, _ := sqliteFile(dsn); got != want {
			t.Errorf("sqliteFile(%q) = %q, want %q", dsn, got, want)
		}
	}
	for dsn, want := range map[string]string{
		"postgres://u:secret@h:5432/db?password=x": "postgres://…@h:5432/db",
		"postgres://h/db":                          "postgres://h/db",
		"sqlite:a.db":                              "sqlite:a.db",
	} {
		if got := redact(dsn); got != want {
			t.Errorf("redact(%q) = %q, want %q", dsn, got, want)
		}
	}
}

func TestWrite(t *testing.T) {
	var b bytes.Buffer
	rs := []Result{
		{Name: "config", Status: OK, Found: "fine"},
		{Name: "hotkey", Status: Fail, Found: "missing", Fix: "horde wallet new"},
		{Name: "gpus", Status: Warn, Found: "none\nsecond line", Fix: "cpu"},
	}
	if err := Write(&b, rs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, w := range []string{"CHECK", "config  ok      fine", "hotkey  FAIL    missing", "fix: horde wallet new", "        second line", "1 failed, 1 warning:"} {
		if !strings.Contains(out, w) {
			t.Errorf("output does not contain %q:\n%s", w, out)
		}
	}
}
