package minerd

import (
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
