package keys

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// aliceKeyfile is //Alice as bittensor writes a hotkey file (Python json.dumps separators).
// privateKey is schnorrkel's SecretKey::to_bytes: the expanded scalar, then the nonce.
const aliceKeyfile = `{"accountId": "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", ` +
	`"publicKey": "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", ` +
	`"privateKey": "0x33a6f3093f158a7109f679410bef1a0c54168145e0cecb4df006c1c2fffb1f09925a225d97aa00682d6a59b95b18780c10d7032336e88f3442b42361f4a66011", ` +
	`"secretPhrase": null, ` +
	`"secretSeed": "0xe5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a", ` +
	`"ss58Address": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"}`

// alicePolkadotJSSecret is //Alice's secret in polkadot.js' Ed25519 form (scalar times 8).
const alicePolkadotJSSecret = "0x98319d4ff8a9508c4bb0cf0b5a78d760a0b2082c02775e6e82370816fedfff48925a225d97aa00682d6a59b95b18780c10d7032336e88f3442b42361f4a66011"

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mnemonic, err := NewMnemonic()
	if err != nil {
		t.Fatal(err)
	}
	kp := mustURI(t, mnemonic)
	path, err := WriteHotkey(dir, "w1", "h1", kp, mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "w1", "hotkeys", "h1"); path != want {
		t.Fatalf("path %s, want %s", path, want)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keyfile mode %v, %v", st.Mode(), err)
	}
	for _, d := range []string{filepath.Join(dir, "w1"), filepath.Join(dir, "w1", "hotkeys")} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("%s mode %v, %v", d, st.Mode(), err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Fatalf("hotkeys dir holds %d entries, want keyfile and pub file (temp files left?)", len(entries))
	}

	var kf map[string]any
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"accountId":    kp.Public().Hex(),
		"publicKey":    kp.Public().Hex(),
		"secretPhrase": mnemonic,
		"secretSeed":   "0x" + hex.EncodeToString(kp.seed[:]),
		"ss58Address":  kp.SS58(),
	}
	for k, v := range want {
		if kf[k] != v {
			t.Errorf("%s = %v, want %v", k, kf[k], v)
		}
	}
	if pk, _ := kf["privateKey"].(string); len(pk) != 2+128 {
		t.Errorf("privateKey %d chars", len(pk))
	}

	var pub map[string]any
	data, _ = os.ReadFile(path + "pub.txt")
	if err := json.Unmarshal(data, &pub); err != nil {
		t.Fatal(err)
	}
	if pub["ss58Address"] != kp.SS58() || pub["publicKey"] != kp.Public().Hex() || pub["accountId"] != kp.Public().Hex() ||
		pub["privateKey"] != nil || pub["secretSeed"] != nil || pub["secretPhrase"] != nil {
		t.Errorf("pub file %v", pub)
	}

	loaded, err := LoadHotkey(dir, "w1", "h1")
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Public() != kp.Public() || string(loaded.secretBytes()) != string(kp.secretBytes()) {
		t.Fatal("loaded key differs")
	}
	msg := []byte("round trip")
	if !kp.Public().Verify(msg, loaded.Sign(msg)) {
		t.Fatal("loaded key signature does not verify")
	}

	// No silent overwrite; explicit overwrite works.
	other := mustURI(t, "//Bob")
	if _, err := WriteHotkey(dir, "w1", "h1", other, ""); !errors.Is(err, ErrKeyfileExists) {
		t.Fatalf("second write: %v, want ErrKeyfileExists", err)
	}
	if err := WriteHotkeyFile(path, other, "", true); err != nil {
		t.Fatal(err)
	}
	if loaded, err := LoadHotkey(dir, "w1", "h1"); err != nil || loaded.SS58() != bobSS58 {
		t.Fatalf("after overwrite: %v %v", loaded, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("overwritten keyfile mode %v, %v", st.Mode(), err)
	}
}

func TestWriteHotkeyVariants(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		uri      string
		mnemonic string
		wantSeed bool
	}{
		{"dev key, no phrase", "//Alice", "", true},
		{"hard path", DevPhrase + "//x//y", "", true},
		{"soft path: privateKey only", "//Alice/soft", "", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp := mustURI(t, tt.uri)
			path, err := WriteHotkey(dir, "w", "h"+string(rune('a'+i)), kp, tt.mnemonic)
			if err != nil {
				t.Fatal(err)
			}
			var kf keyfile
			data, _ := os.ReadFile(path)
			if err := json.Unmarshal(data, &kf); err != nil {
				t.Fatal(err)
			}
			if (kf.SecretSeed != nil) != tt.wantSeed || kf.SecretPhrase != nil || kf.PrivateKey == nil {
				t.Fatalf("keyfile %s", data)
			}
			loaded, err := LoadHotkeyFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if loaded.Public() != kp.Public() {
				t.Fatal("loaded key differs")
			}
		})
	}

	t.Run("mnemonic that does not give the key", func(t *testing.T) {
		_, err := WriteHotkey(dir, "w", "bad", mustURI(t, "//Alice"), DevPhrase)
		if !errors.Is(err, ErrKeyfileMismatch) {
			t.Fatalf("err = %v", err)
		}
		if _, serr := os.Stat(filepath.Join(dir, "w", "hotkeys", "bad")); !os.IsNotExist(serr) {
			t.Fatal("a keyfile was written")
		}
	})
}

func TestLoadBittensorKeyfile(t *testing.T) {
	dir := t.TempDir()
	replace := func(old, new string) string { return strings.Replace(aliceKeyfile, old, new, 1) }
	bobPub := mustURI(t, "//Bob").Public().Hex()
	tests := []struct {
		name    string
		content string
		want    error // nil: loads as //Alice
		wantMsg string
	}{
		{"bittensor file", aliceKeyfile, nil, ""},
		{"with trailing newline", aliceKeyfile + "\n", nil, ""},
		{"seed only", `{"secretSeed": "0x` + aliceSeed + `"}`, nil, ""},
		{"seed without 0x", `{"secretSeed": "` + aliceSeed + `"}`, nil, ""},
		{"private key only", `{"privateKey": "0x33a6f3093f158a7109f679410bef1a0c54168145e0cecb4df006c1c2fffb1f09925a225d97aa00682d6a59b95b18780c10d7032336e88f3442b42361f4a66011"}`, nil, ""},
		{"polkadot.js form private key only", `{"privateKey": "` + alicePolkadotJSSecret + `"}`, nil, ""},
		{"polkadot.js form private key with seed", replace(`"privateKey": "0x33a6f3093f158a7109f679410bef1a0c54168145e0cecb4df006c1c2fffb1f09925a225d97aa00682d6a59b95b18780c10d7032336e88f3442b42361f4a66011"`, `"privateKey": "`+alicePolkadotJSSecret+`"`), nil, ""},
		{"phrase only", `{"secretPhrase": "` + DevPhrase + `", "ss58Address": "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV"}`, nil, ""},

		{"not JSON", "hello", ErrKeyfileMalformed, "not a JSON keyfile"},
		{"empty", "", ErrKeyfileMalformed, "not a JSON keyfile"},
		{"JSON array", "[]", ErrKeyfileMalformed, "not a JSON keyfile"},
		{"truncated JSON", aliceKeyfile[:50], ErrKeyfileMalformed, "not a JSON keyfile"},
		{"NaCl encrypted", "$NACL" + strings.Repeat("\x01\x02", 40), ErrKeyfileEncrypted, "decrypt"},
		{"BTWALLET encrypted", "$BTWALLET" + "abcdef", ErrKeyfileEncrypted, "decrypt"},
		{"ansible vault", "$ANSIBLE_VAULT;1.1;AES256\n6162", ErrKeyfileEncrypted, "decrypt"},
		{"legacy fernet", "gAAAAABk" + strings.Repeat("x", 40), ErrKeyfileEncrypted, "decrypt"},
		{"no secret", `{"accountId": "` + alicePubHex + `", "ss58Address": "` + aliceSS58 + `"}`, ErrKeyfileMalformed, "cannot sign"},
		{"mismatched publicKey", replace(`"publicKey": "`+alicePubHex, `"publicKey": "`+bobPub), ErrKeyfileMismatch, "publicKey"},
		{"mismatched accountId", replace(`"accountId": "`+alicePubHex, `"accountId": "`+bobPub), ErrKeyfileMismatch, "accountId"},
		{"mismatched ss58Address", replace(aliceSS58, bobSS58), ErrKeyfileMismatch, "ss58Address"},
		{"all public fields of another key", strings.ReplaceAll(replace(aliceSS58, bobSS58), alicePubHex, bobPub), ErrKeyfileMismatch, "secretSeed gives " + aliceSS58},
		{"mismatched privateKey", replace("0x33a6f309", "0x33a6f30a"), ErrKeyfileMismatch, "privateKey"},
		{"phrase and seed disagree", replace(`"secretPhrase": null`, `"secretPhrase": "`+DevPhrase+`"`), ErrKeyfileMismatch, "secretPhrase"},
		{"bad seed hex", replace("0xe5be9a50", "0xe5be9a5z"), ErrKeyfileMalformed, "secretSeed"},
		{"short seed", replace("0xe5be9a50", "0xe5be9a"), ErrKeyfileMalformed, "secretSeed"},
		{"bad ss58Address", replace(aliceSS58, aliceSS58[:40]), ErrKeyfileMalformed, "ss58Address"},
		{"bad phrase", `{"secretPhrase": "bottom drive obey"}`, ErrKeyfileMalformed, "secretPhrase"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, "k"+string(rune('a'+i)), tt.content)
			kp, err := LoadHotkeyFile(path)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if tt.name == "phrase only" {
					if kp.SS58() != "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV" {
						t.Fatalf("dev phrase root = %s", kp.SS58())
					}
					return
				}
				if kp.SS58() != aliceSS58 {
					t.Fatalf("loaded %s", kp.SS58())
				}
				msg := []byte("m")
				if !kp.Public().Verify(msg, kp.Sign(msg)) {
					t.Fatal("cannot sign")
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.want, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file: %v", err)
			}
			for _, secret := range []string{aliceSeed[:12], "33a6f309", "bottom drive"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error echoes a secret: %v", err)
				}
			}
		})
	}
}

func TestLoadHotkeyErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadHotkey(dir, "nope", "default"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	for _, name := range []string{"", ".", "..", "a/b", `a\b`} {
		if _, err := LoadHotkey(dir, name, "default"); !errors.Is(err, ErrInvalidName) {
			t.Errorf("wallet %q: %v", name, err)
		}
		if _, err := WriteHotkey(dir, "w", name, mustURI(t, "//Alice"), ""); !errors.Is(err, ErrInvalidName) {
			t.Errorf("hotkey %q: %v", name, err)
		}
	}
	big := writeFile(t, dir, "big", "{"+strings.Repeat(" ", maxKeyfileSize)+"}")
	if _, err := LoadHotkeyFile(big); !errors.Is(err, ErrKeyfileMalformed) {
		t.Errorf("huge file: %v", err)
	}
}

func TestHotkeyPathHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	p, err := HotkeyPath("~/.bittensor/wallets", "w", "h")
	if err != nil || p != filepath.Join(home, ".bittensor", "wallets", "w", "hotkeys", "h") {
		t.Fatalf("HotkeyPath = %s, %v", p, err)
	}
	if d := DefaultWalletsDir(); d != filepath.Join(home, ".bittensor", "wallets") {
		t.Fatalf("DefaultWalletsDir = %s", d)
	}
}
