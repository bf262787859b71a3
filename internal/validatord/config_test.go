package validatord

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestExampleConfig(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	c, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "examples", "validator.toml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Chain.NetUID != 12 || c.DSN() != "sqlite:/var/lib/horde-validator/validator.db" || c.APIListen != "127.0.0.1:8100" {
		t.Errorf("example config: %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	write := func(s string) string {
		p := filepath.Join(t.TempDir(), "v.toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, tc := range map[string]struct{ file, want string }{
		"unknown key":          {"[chain]\nurll = \"x\"\n", `line 2: unknown key "chain.urll"`},
		"public api, no token": {"api_listen = \"0.0.0.0:8100\"\n", "api_token"},
		"identity, no token":   {"[chain]\nidentity = \"validator\"\n", "HORDE_VALIDATOR_CHAIN_TOKEN"},
		"bad listen":           {"api_listen = \"8100\"\n", "api_listen"},
	} {
		if _, err := Load(write(tc.file), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
