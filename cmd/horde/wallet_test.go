package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/keys"
)

func runWalletOut(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = runWallet(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestWalletInspect(t *testing.T) {
	tests := []struct {
		uri, pub, ss58 string
	}{
		{"//Alice", "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"},
		{"//Bob", "0x8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48", "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"},
		{"0xe5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a", "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			out, _, err := runWalletOut(t, "inspect", tt.uri)
			if err != nil {
				t.Fatal(err)
			}
			want := "public key: " + tt.pub + "\nss58 address: " + tt.ss58 + "\n"
			if out != want {
				t.Fatalf("output:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

func TestWalletInspectStdin(t *testing.T) {
	old := walletStdin
	t.Cleanup(func() { walletStdin = old })
	walletStdin = strings.NewReader("//Alice\n")
	out, _, err := runWalletOut(t, "inspect", "-")
	if err != nil || !strings.Contains(out, "ss58 address: 5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\n") {
		t.Fatalf("%q, %v", out, err)
	}
}

func TestWalletErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		args  []string
		usage bool   // error wraps errUsage
		want  error  // or wraps this
		msg   string // and contains this
	}{
		{"no command", nil, true, nil, "name a wallet command"},
		{"unknown command", []string{"frobnicate"}, true, nil, "unknown wallet command"},
		{"inspect without URI", []string{"inspect"}, true, nil, "exactly one secret URI"},
		{"inspect unquoted mnemonic", []string{"inspect", "bottom", "drive"}, true, nil, "exactly one secret URI"},
		{"inspect bad URI", []string{"inspect", "//Alice/"}, false, keys.ErrInvalidURI, "empty junction"},
		{"inspect bad word", []string{"inspect", "notaword"}, false, keys.ErrInvalidMnemonic, "1 word"},
		{"inspect bad flag", []string{"inspect", "--nope", "//Alice"}, true, nil, "nope"},
		{"show missing", []string{"show", "--wallets-dir", dir, "--wallet", "none"}, false, os.ErrNotExist, "no such file"},
		{"show bad name", []string{"show", "--wallets-dir", dir, "--wallet", "../x"}, false, keys.ErrInvalidName, "plain file name"},
		{"new extra argument", []string{"new", "--wallets-dir", dir, "extra"}, true, nil, "no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runWalletOut(t, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.usage != errors.Is(err, errUsage) {
				t.Fatalf("err = %v; usage error: %v, want %v", err, errors.Is(err, errUsage), tt.usage)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func TestWalletHelp(t *testing.T) {
	out, _, err := runWalletOut(t, "--help")
	if err != nil || !strings.Contains(out, "inspect URI") {
		t.Fatalf("%q %v", out, err)
	}
	_, stderr, err := runWalletOut(t, "new", "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "-overwrite") {
		t.Fatalf("new -h: %v, %q", err, stderr)
	}
}

func TestWalletNewShow(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runWalletOut(t, "new", "--wallets-dir", dir, "--wallet", "miner", "--hotkey", "hk")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "miner", "hotkeys", "hk")
	m := regexp.MustCompile(`(?m)^hotkey file: (.+)\npublic key: (0x[0-9a-f]{64})\nss58 address: (5\w{47})\nmnemonic: ((?:[a-z]+ ){11}[a-z]+)\n\nWARNING: .*store it safely`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("unexpected output:\n%s", out)
	}
	if m[1] != path {
		t.Fatalf("path %s, want %s", m[1], path)
	}
	// The printed mnemonic restores the key.
	kp, err := keys.FromURI(m[4])
	if err != nil || kp.SS58() != m[3] || kp.Public().Hex() != m[2] {
		t.Fatalf("mnemonic gives %v, %v", kp, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keyfile: %v, %v", st, err)
	}

	show, _, err := runWalletOut(t, "show", "--wallets-dir", dir, "--wallet", "miner", "--hotkey", "hk")
	if err != nil {
		t.Fatal(err)
	}
	if want := "hotkey file: " + path + "\npublic key: " + m[2] + "\nss58 address: " + m[3] + "\n"; show != want {
		t.Fatalf("show:\n%s\nwant:\n%s", show, want)
	}

	// A second `new` does not replace the key; --overwrite does.
	if _, _, err := runWalletOut(t, "new", "--wallets-dir", dir, "--wallet", "miner", "--hotkey", "hk"); !errors.Is(err, keys.ErrKeyfileExists) {
		t.Fatalf("second new: %v", err)
	}
	out2, _, err := runWalletOut(t, "new", "--wallets-dir", dir, "--wallet", "miner", "--hotkey", "hk", "--overwrite")
	if err != nil || strings.Contains(out2, m[3]) {
		t.Fatalf("overwrite: %v\n%s", err, out2)
	}
}

func TestWalletsDirEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(walletsDirEnv, dir)
	if _, _, err := runWalletOut(t, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "default", "hotkeys", "default")); err != nil {
		t.Fatal(err)
	}
	out, _, err := runWalletOut(t, "show")
	if err != nil || !strings.Contains(out, filepath.Join(dir, "default", "hotkeys", "default")) {
		t.Fatalf("show: %v\n%s", err, out)
	}
}

// TestWalletImport: a mnemonic read from standard input becomes the hotkey file btcli's
// regen-hotkey would write (keeping the phrase), loadable by the roles; a derived URI gets a
// file without a phrase; an existing file is kept without --overwrite; a bad phrase is
// refused with nothing written.
func TestWalletImport(t *testing.T) {
	dir := t.TempDir()
	const phrase = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
	want, err := keys.FromURI(phrase)
	if err != nil {
		t.Fatal(err)
	}
	importing := func(input string, args ...string) (string, error) {
		t.Helper()
		old := walletStdin
		walletStdin = strings.NewReader(input)
		defer func() { walletStdin = old }()
		out, _, err := runWalletOut(t, append([]string{"import", "--wallet-path", dir}, args...)...)
		return out, err
	}
	out, err := importing(phrase+"\n", "--wallet", "miner", "--hotkey", "hk")
	if err != nil || !strings.Contains(out, want.SS58()) || strings.Contains(out, "bottom") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "miner", "hotkeys", "hk")
	kp, err := keys.LoadHotkey(dir, "miner", "hk")
	if err != nil || kp.SS58() != want.SS58() {
		t.Fatalf("the roles load %v, %v; want %s", kp, err, want.SS58())
	}
	raw, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(raw), `"secretPhrase":"`+phrase+`"`) {
		t.Fatalf("keyfile %s (%v): want the phrase kept, as bittensor does", raw, err)
	}

	if _, err := importing("//Alice\n", "--wallet", "miner", "--hotkey", "hk"); !errors.Is(err, keys.ErrKeyfileExists) {
		t.Fatalf("import over an existing file: %v", err)
	}
	out, err = importing(phrase+"//hard\n", "--wallet", "miner", "--hotkey", "hk", "--overwrite")
	derived, _ := keys.FromURI(phrase + "//hard")
	if err != nil || !strings.Contains(out, derived.SS58()) {
		t.Fatalf("derived import: %v\n%s", err, out)
	}
	if raw, _ := os.ReadFile(path); strings.Contains(string(raw), `"secretPhrase":"`) {
		t.Errorf("a derived key's file keeps a phrase that does not give it: %s", raw)
	}

	if _, err := importing("not a mnemonic at all\n", "--hotkey", "bad"); err == nil {
		t.Fatal("a bad mnemonic was imported")
	}
	if _, err := os.Stat(filepath.Join(dir, "default", "hotkeys", "bad")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused import left a file: %v", err)
	}
}
