package keys

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	schnorrkel "github.com/ChainSafe/go-schnorrkel"
	"golang.org/x/crypto/blake2b"
)

const (
	hotelPhrase = "hotel forest jar hover kite book view eight stuff angle legend defense"
	soupPhrase  = "soup lyrics media market way crouch elevator put moon useful question wide"
)

// TestFromURIVectors uses addresses published by subkey's README, polkadot.js' keyring tests
// and the well-known dev accounts.
func TestFromURIVectors(t *testing.T) {
	tests := []struct {
		name, uri, ss58 string
	}{
		{"dev hard", "//Alice", aliceSS58},
		{"dev hard Bob", "//Bob", bobSS58},
		{"dev phrase spelled out", DevPhrase + "//Alice", aliceSS58},
		{"dev phrase extra spaces", "  bottom drive obey lake  curtain smoke basket hold race lonely fit walk//Alice", aliceSS58},
		{"raw seed", "0x" + aliceSeed, aliceSS58},
		{"raw seed Bob", "0x" + bobSeed, bobSS58},
		{"raw seed uppercase hex", "0x" + strings.ToUpper(aliceSeed), aliceSS58},
		{"two hard junctions", "//Alice//stash", "5GNJqTPyNqANBkUVMN1LPPrxXnFouWXoe2wNSmmEoLctxiZY"},
		{"raw seed then hard", "0x" + aliceSeed + "//stash", "5GNJqTPyNqANBkUVMN1LPPrxXnFouWXoe2wNSmmEoLctxiZY"},
		{"hard then soft numeric (polkadot.js)", "//Alice//funding/0", "5ECQNn7UueWHPFda5qUi4fTmTtyCnPvGnuoyVVSj5CboJh9J"},
		{"mnemonic (subkey README)", hotelPhrase, "5Hpm9fq3W3dQgwWpAwDS2ZHKAdnk86QRCu7iX4GnmDxycrte"},
		{"raw seed (subkey README)", "0xa05c75731970cc7868a2fb7cb577353cd5b31f62dccced92c441acd8fee0c92d", "5Hpm9fq3W3dQgwWpAwDS2ZHKAdnk86QRCu7iX4GnmDxycrte"},
		{"mnemonic without password (subkey README)", soupPhrase, "5Fe4sqj2K4fRuzEGvToi4KATqZfiDU7TqynjXG6PZE2dxwyh"},
		{"mnemonic with password (subkey README)", soupPhrase + "///extra_secret", "5He5pZpc7AJ8evPuab37vJF6KkFDqq9uDq2WXh877Qw6iaVC"},
		{"seed with password applied (subkey README)", "0xe7cfd179d6537a676cb94bac3b5c5c9cb1550e846ac4541040d077dfbac2e7fd", "5He5pZpc7AJ8evPuab37vJF6KkFDqq9uDq2WXh877Qw6iaVC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustURI(t, tt.uri).SS58(); got != tt.ss58 {
				t.Fatalf("FromURI = %s, want %s", got, tt.ss58)
			}
		})
	}
}

// TestFromURIPaths checks path parsing by equivalences: junction kinds, numeric encoding,
// long names, and passwords combined with paths.
func TestFromURIPaths(t *testing.T) {
	ss := func(uri string) string { return mustURI(t, uri).SS58() }
	distinct := []string{
		"//Alice", "/Alice", "//Alice/1", "//Alice//1", "//Alice/2", "//Alice///pw", "//Alice/a//b", "//Alice//a/b",
		"//" + strings.Repeat("x", 40), "//" + strings.Repeat("x", 41),
		DevPhrase + "//hard/soft//hard", DevPhrase + "//hard/soft//hard///pw",
	}
	seen := map[string]string{}
	for _, uri := range distinct {
		a := ss(uri)
		if prev, ok := seen[a]; ok {
			t.Errorf("%q and %q give the same key", uri, prev)
		}
		seen[a] = uri
		if ss(uri) != a {
			t.Errorf("%q is not deterministic", uri)
		}
	}
	same := [][2]string{
		{"//Alice//007", "//Alice//7"},       // numeric junctions are u64 values
		{"//Alice//+7", "//Alice//7"},        // Rust's u64::from_str accepts a leading +
		{DevPhrase + "///", DevPhrase},       // empty password
		{"///pw//x", DevPhrase + "///pw//x"}, // everything after /// is the password
		{"//Alice/" + strings.Repeat("y", 100), "//Alice/" + strings.Repeat("y", 100)},
	}
	for _, p := range same {
		if ss(p[0]) != ss(p[1]) {
			t.Errorf("%q and %q differ", p[0], p[1])
		}
	}
	if ss("//Alice//18446744073709551616") == ss("//Alice//0") {
		t.Error("u64 overflow must fall back to a string junction")
	}
}

// TestSoftDeriveVector checks soft derivation against sr25519-crust's Rust-generated vector.
func TestSoftDeriveVector(t *testing.T) {
	kpBytes, _ := hex.DecodeString("4c1250e05afcd79e74f6c035aee10248841090e009b6fd7ba6a98d5dc743250cafa4b32c608e3ee2ba624850b3f14c75841af84b16798bf1ee4a3875aa37a2cee661e416406384fe1ca091980958576d2bff7c461636e9f22c895f444905ea1f")
	parent, err := fromSecretBytes(kpBytes[:64])
	if err != nil {
		t.Fatal(err)
	}
	if parent.Public().Hex() != "0x"+hex.EncodeToString(kpBytes[64:]) {
		t.Fatalf("parent public %s", parent.Public().Hex())
	}
	tests := []struct {
		hard bool
		want string
	}{
		{false, "0xb21e5aabeeb35d6a1bf76226a6c65cd897016df09ef208243e59eed2401f5357"},
	}
	for _, tt := range tests {
		j := junction{hard: tt.hard, cc: junctionChainCode("foo")}
		child, err := parent.derive(j)
		if err != nil {
			t.Fatal(err)
		}
		if child.Public().Hex() != tt.want {
			t.Errorf("soft child %s, want %s", child.Public().Hex(), tt.want)
		}
		if child.hasSeed {
			t.Error("soft child must have no seed")
		}
		// The child signs with its derived secret.
		msg := []byte("soft")
		if !child.Public().Verify(msg, child.Sign(msg)) {
			t.Error("soft child signature does not verify")
		}
		// And its public key follows from the parent's public key alone.
		pk, _ := schnorrkel.NewPublicKey(parent.Public())
		ek, err := schnorrkel.DeriveKeySimple(pk, []byte{}, j.cc)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := ek.Public()
		if PublicKey(pub.Encode()) != child.Public() {
			t.Error("public derivation disagrees")
		}
	}
}

func TestJunctionChainCode(t *testing.T) {
	tests := []struct {
		name string
		want string // hex, zero padding trimmed
	}{
		{"Alice", "14416c696365"},
		{"foo", "0c666f6f"},
		{"0", "0000000000000000"},
		{"7", "0700000000000000"},
		{"18446744073709551615", "ffffffffffffffff"},
		{"-1", "082d31"},
		{"", "00"},
	}
	for _, tt := range tests {
		cc := junctionChainCode(tt.name)
		got := strings.TrimRight(hex.EncodeToString(cc[:]), "0")
		want := strings.TrimRight(tt.want, "0")
		if got != want {
			t.Errorf("%q: %s, want %s", tt.name, hex.EncodeToString(cc[:]), tt.want)
		}
	}
	long := strings.Repeat("z", 40)
	cc := junctionChainCode(long)
	enc := append([]byte{40 << 2}, long...)
	if cc != blake2b.Sum256(enc) {
		t.Error("long junction is not blake2b-256 of its encoding")
	}
}

func TestAppendCompact(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "00"}, {1, "04"}, {63, "fc"}, {64, "0101"}, {16383, "fdff"}, {16384, "02000100"},
		{1<<30 - 1, "feffffff"}, {1 << 30, "0300000040"}, {1<<32 - 1, "03ffffffff"}, {1 << 32, "070000000001"},
	}
	for _, tt := range tests {
		if got := hex.EncodeToString(appendCompact(nil, tt.n)); got != tt.want {
			t.Errorf("compact(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestFromURIErrors(t *testing.T) {
	// A valid 12-word phrase with the last word changed: valid words, bad checksum.
	badChecksum := strings.Replace(DevPhrase, "walk", "wall", 1)
	tests := []struct {
		name    string
		uri     string
		want    error
		wantMsg string
	}{
		{"empty", "", ErrInvalidURI, "empty"},
		{"blank", "   ", ErrInvalidURI, "empty"},
		{"trailing slash", "//Alice/", ErrInvalidURI, "empty junction"},
		{"double trailing slash", "//Alice//", ErrInvalidURI, "empty junction"},
		{"lone slash", "/", ErrInvalidURI, "empty junction"},
		{"password on raw seed", "0x" + aliceSeed + "///pw", ErrInvalidURI, "password"},
		{"short seed", "0x" + aliceSeed[:62], ErrInvalidURI, "62 hex digits"},
		{"seed not hex", "0x" + aliceSeed[:62] + "zz", ErrInvalidURI, "not hexadecimal"},
		{"single word", "Alice", ErrInvalidMnemonic, "1 word,"},
		{"ss58 address", aliceSS58 + "//x", ErrInvalidMnemonic, "1 word,"},
		{"eleven words", strings.Join(strings.Fields(DevPhrase)[:11], " "), ErrInvalidMnemonic, "11 words"},
		{"unknown word", strings.Replace(DevPhrase, "curtain", "curtainz", 1), ErrInvalidMnemonic, "word 5 is not in the BIP-39"},
		{"bad checksum", badChecksum, ErrInvalidMnemonic, "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := FromURI(tt.uri)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("FromURI = %v, %v; want %v containing %q", kp, err, tt.want, tt.wantMsg)
			}
			for _, secret := range []string{"curtainz", "wall", aliceSeed[:16]} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error echoes a secret: %v", err)
				}
			}
		})
	}
}

func TestNewMnemonic(t *testing.T) {
	m1, err := NewMnemonic()
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := NewMnemonic()
	if len(strings.Fields(m1)) != 12 || m1 == m2 {
		t.Fatalf("NewMnemonic = %q, %q", m1, m2)
	}
	kp := mustURI(t, m1)
	if kp.Public() != mustURI(t, m1).Public() || !kp.hasSeed {
		t.Fatal("mnemonic keypair not deterministic")
	}
}
