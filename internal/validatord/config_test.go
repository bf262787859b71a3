package validatord

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/protocol"
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
		"unknown class weight": {"class_weights = \"always_on.nope=1\"\n", "class_weights"},
		"negative weight":      {"class_weights = \"always_on.test=-1\"\n", "class_weights"},
	} {
		if _, err := Load(write(tc.file), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// A validator of a subnet of always_on.test executors (value 0 by default) weighs their work
// when class_weights gives the class a value (found by the fault suite, package faults:
// its validators never set weights).
func TestClassWeights(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v.toml")
	if err := os.WriteFile(p, []byte("class_weights = \"always_on.test=1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Classes()
	if err != nil {
		t.Fatal(err)
	}
	if v := r.RelativeValues()[protocol.ExecutorClassAlwaysOnTest]; v != 1 {
		t.Errorf("always_on.test's value %v, want 1", v)
	}
	d := Defaults()
	if r, err := d.Classes(); err != nil || r.RelativeValues()[protocol.ExecutorClassAlwaysOnTest] != 0 {
		t.Errorf("default: %v, %v", r.RelativeValues(), err)
	}
}
