package minerd

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/protocol"
)

func exampleConfig(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples", "miner.toml")
}

// TestExampleConfig holds examples/miner.toml to the configuration: every key it documents
// exists, and it loads as it is.
func TestExampleConfig(t *testing.T) {
	c, err := Load(exampleConfig(t), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Chain.NetUID != 12 || c.Manifest().Count(protocol.ExecutorClassSpinUp4minGPU24GB) != 1 || c.DSN() != "sqlite:/var/lib/horde-miner/miner.db" {
		t.Errorf("example config: %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	write := func(s string) string {
		p := filepath.Join(t.TempDir(), "m.toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const ok = "[executors]\nclasses = { \"always_on.test\" = 1 }\n"
	for name, tc := range map[string]struct {
		file string
		env  map[string]string
		want string
	}{
		"unknown key":            {ok + "[chain]\nurll = \"x\"\n", nil, `line 4: unknown key "chain.urll"`},
		"no classes":             {"", nil, "executors.classes: empty"},
		"unknown class":          {"[executors]\nclasses = { \"always_on.tpu\" = 1 }\n", nil, `"always_on.tpu" is not an executor class`},
		"bad listen":             {"listen = \"8000\"\n" + ok, nil, "listen:"},
		"bad external":           {"external_address = \"0.0.0.0:8000\"\n" + ok, nil, "external_address:"},
		"identity, no token":     {ok + "[chain]\nidentity = \"miner\"\n", nil, "chain.token"},
		"bad egress":             {ok, map[string]string{"HORDE_MINER_EXECUTORS_ALLOW_EGRESS": "nonsense"}, "executors.allow_egress"},
		"bad manager":            {ok, map[string]string{"HORDE_MINER_EXECUTORS_MANAGER": "kubernetes"}, "executors.manager"},
		"docker, no hosts":       {"[executors]\nmanager = \"docker\"\nimage = \"x\"\n", nil, "executors.hosts"},
		"docker host, bad class": {"[executors]\nmanager = \"docker\"\nimage = \"x\"\n[[executors.hosts]]\nname = \"a\"\nendpoint = \"unix:///x\"\nclasses = { \"nope\" = 1 }\n", nil, `executors.hosts[0].classes: "nope"`},
		"admin half set":         {"[admin]\nusername = \"op\"\n" + ok, nil, "admin: set both"},
		"negative gpus":          {ok + "gpus = -1\n", nil, "executors.gpus: -1 is outside"},
		"docker host, bad gpus":  {"[executors]\nmanager = \"docker\"\nimage = \"x\"\n[[executors.hosts]]\nname = \"a\"\nendpoint = \"unix:///x\"\nclasses = { \"always_on.test\" = 1 }\ngpus = -2\n", nil, "executors.hosts[0].gpus: -2"},
	} {
		_, err := Load(write(tc.file), func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	d, err := Load(write("[executors]\nmanager = \"docker\"\nimage = \"x\"\n[[executors.hosts]]\nname = \"a\"\nendpoint = \"unix:///x\"\nclasses = { \"always_on.test\" = 2 }\n[[executors.hosts]]\nname = \"b\"\nendpoint = \"unix:///y\"\nclasses = { \"always_on.test\" = 3 }\n"), func(string) string { return "" })
	if err != nil || d.Manifest().Count(protocol.ExecutorClassAlwaysOnTest) != 5 {
		t.Errorf("docker hosts' manifest: %v, %v", d.Manifest(), err)
	}
	c, err := Load(write(ok), func(k string) string {
		return map[string]string{"HORDE_MINER_CHAIN_IDENTITY": "miner", "HORDE_MINER_CHAIN_TOKEN": "tok", "HORDE_MINER_EXECUTORS_CLASSES": "always_on.test=2"}[k]
	})
	if err != nil || c.Chain.Token != "tok" || c.Manifest().Count(protocol.ExecutorClassAlwaysOnTest) != 2 {
		t.Errorf("env over file: %+v, %v", c, err)
	}
}

// TestProcessExecutorsGPUs: the process manager gives each GPU executor its own GPUs of
// executors.gpus, and more GPU executors than GPUs fail the miner's start.
func TestProcessExecutorsGPUs(t *testing.T) {
	cfg := Defaults()
	cfg.Executors.Classes = map[string]int{string(protocol.ExecutorClassSpinUp4minGPU24GB): 3}
	cfg.Executors.GPUs = 2
	addr := netip.MustParseAddrPort("127.0.0.1:8000")
	_, err := newExecutors(context.Background(), &cfg, Options{}, addr, "x", slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "has 2 GPUs but its executors need 3") {
		t.Fatalf("3 GPU executors on 2 GPUs: %v", err)
	}
	cfg.Executors.GPUs = 3
	execs, err := newExecutors(context.Background(), &cfg, Options{}, addr, "x", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = execs.Close()
}
