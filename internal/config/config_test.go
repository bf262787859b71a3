package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Listen  string   `toml:"listen"`
	Timeout Duration `toml:"timeout"`
	Stake   float64  `toml:"min_stake"`
	Chain   struct {
		URL    string `toml:"url"`
		Token  string `toml:"token" secret:"true"`
		NetUID uint16 `toml:"netuid"`
	} `toml:"chain"`
	Executors struct {
		Classes     map[string]int `toml:"classes"`
		AllowEgress []string       `toml:"allow_egress"`
		Enabled     bool           `toml:"enabled"`
	} `toml:"executors"`
}

const goodFile = `
listen = "0.0.0.0:8000"
timeout = "90s"
min_stake = 1000.5

[chain]
url = "http://pylon:8000"
token = "file-secret"
netuid = 12

[executors]
classes = { "always_on.test" = 2 }
allow_egress = ["10.0.0.0/8"]
enabled = true
`

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileThenEnv(t *testing.T) {
	var c testConfig
	env := map[string]string{
		"HORDE_X_CHAIN_TOKEN":       "env-secret",
		"HORDE_X_EXECUTORS_CLASSES": "always_on.test=3, always_on.gpu-24gb=1",
		"HORDE_X_TIMEOUT":           "2m",
	}
	if err := Load(write(t, goodFile), &c, "HORDE_X", func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:8000" || time.Duration(c.Timeout) != 2*time.Minute || c.Stake != 1000.5 || c.Chain.NetUID != 12 ||
		c.Chain.Token != "env-secret" || c.Executors.Classes["always_on.test"] != 3 || c.Executors.Classes["always_on.gpu-24gb"] != 1 ||
		len(c.Executors.Classes) != 2 || c.Executors.AllowEgress[0] != "10.0.0.0/8" || !c.Executors.Enabled {
		t.Errorf("config %+v", c)
	}
	d := Describe(&c)
	if strings.Contains(d, "secret") || !strings.Contains(d, "chain.token = ****") || !strings.Contains(d, "timeout = 2m0s") {
		t.Errorf("describe:\n%s", d)
	}
	keys := Keys(&c, "HORDE_X")
	if len(keys) != 9 || keys[3].Env != "HORDE_X_CHAIN_URL" || !keys[4].Secret {
		t.Errorf("keys %+v", keys)
	}
}

func TestStrictErrorsNameKeyAndLine(t *testing.T) {
	for name, tc := range map[string]struct{ file, want string }{
		"unknown key":        {"listen = \"x\"\n\n[chain]\nurll = \"y\"\n", `line 4: unknown key "chain.urll"`},
		"unknown table":      {"[chian]\nurl = \"y\"\n", `unknown key "chian`},
		"wrong type":         {"listen = 8000\n", "line 1"},
		"bad duration":       {"timeout = \"soon\"\n", "soon"},
		"syntax":             {"listen = \n", "line 1"},
		"overflow":           {"[chain]\nnetuid = 70000\n", "line 2"},
		"two unknown keys":   {"a = 1\nb = 2\n", `line 2: unknown key "b"`},
		"unknown nested key": {"[executors]\nclases = {}\n", `line 2: unknown key "executors.clases"`},
	} {
		var c testConfig
		err := Load(write(t, tc.file), &c, "HORDE_X", func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestEnvErrors(t *testing.T) {
	for env, want := range map[string]string{
		"HORDE_X_CHAIN_NETUID":      "HORDE_X_CHAIN_NETUID",
		"HORDE_X_EXECUTORS_ENABLED": "not true or false",
		"HORDE_X_EXECUTORS_CLASSES": "KEY=INTEGER",
		"HORDE_X_MIN_STAKE":         "not a number",
	} {
		var c testConfig
		err := Load("", &c, "HORDE_X", func(k string) string {
			if k == env {
				return "bogus"
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", env, err)
		}
	}
	var c testConfig
	err := ApplyEnv(&c, "HORDE_X", func(k string) string {
		if k == "HORDE_X_CHAIN_TOKEN" {
			return "s3cret"
		}
		return ""
	})
	if err != nil || c.Chain.Token != "s3cret" {
		t.Errorf("%v %+v", err, c)
	}
	if err := Load(filepath.Join(t.TempDir(), "missing.toml"), &c, "X", os.Getenv); err == nil {
		t.Error("a missing file was accepted")
	}
	big := write(t, strings.Repeat("#", MaxFileBytes+1))
	if err := Load(big, &c, "X", os.Getenv); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}
