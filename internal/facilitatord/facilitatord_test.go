package facilitatord

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestExampleConfig(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	c, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "examples", "facilitator.toml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.DSN() != "sqlite:/var/lib/horde-facilitator/facilitator.db" || c.Listen != "127.0.0.1:8200" || len(c.Validators) != 1 ||
		c.Prices["always_on.test"] != 1000 {
		t.Errorf("example config: %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	write := func(s string) string {
		p := filepath.Join(t.TempDir(), "f.toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const ok = "validators = [\"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\"]\n"
	for name, tc := range map[string]struct{ file, want string }{
		"unknown key":     {ok + "listn = \"x\"\n", `unknown key "listn"`},
		"no validators":   {"", "validators: empty"},
		"bad validator":   {"validators = [\"nope\"]\n", `validators: "nope" is not an ss58 hotkey`},
		"bad listen":      {ok + "listen = \"here\"\n", "listen:"},
		"unknown class":   {ok + "[prices]\n\"no.such\" = 5\n", "prices:"},
		"negative price":  {ok + "[prices]\n\"always_on.test\" = -5\n", "must be positive"},
		"short secret":    {ok + "token_secret = \"abc\"\n", "token_secret: shorter than 32"},
		"bad requeue":     {ok + "requeue_after = \"0s\"\n", "requeue_after"},
		"zero rate limit": {ok + "rate_limit = 0.0\n", "rate_limit"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(write(tc.file), func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
