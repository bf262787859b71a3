package keys

import (
	"errors"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil/base58"
)

func TestSS58RoundTrip(t *testing.T) {
	tests := []struct {
		uri, ss58 string
	}{
		{"//Alice", aliceSS58},
		{"//Bob", bobSS58},
		{"//Alice//stash", "5GNJqTPyNqANBkUVMN1LPPrxXnFouWXoe2wNSmmEoLctxiZY"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			kp := mustURI(t, tt.uri)
			if got := kp.Public().SS58(); got != tt.ss58 {
				t.Fatalf("SS58 = %s, want %s", got, tt.ss58)
			}
			p, err := ParsePublicKey(tt.ss58)
			if err != nil {
				t.Fatal(err)
			}
			if p != kp.Public() {
				t.Fatal("ParsePublicKey does not round trip")
			}
		})
	}
}

func TestSS58OtherPrefixes(t *testing.T) {
	alice := mustURI(t, "//Alice").Public()
	tests := []struct {
		prefix uint16
		want   string
	}{
		{0, "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5"}, // Polkadot
		{2, "HNZata7iMYWmk5RvZRTiAsSDhV8366zq2YGb3tLH5Upf74F"},  // Kusama
		{42, aliceSS58}, // generic Substrate / Bittensor
		{255, ""},       // two-byte form, checked by round trip only
		{16383, ""},
	}
	for _, tt := range tests {
		enc := encodeSS58(tt.prefix, alice)
		if tt.want != "" && enc != tt.want {
			t.Errorf("prefix %d: %s, want %s", tt.prefix, enc, tt.want)
		}
		prefix, pub, err := decodeSS58(enc)
		if err != nil || prefix != tt.prefix || pub != alice {
			t.Errorf("prefix %d: decode = %d, %v", tt.prefix, prefix, err)
		}
		_, err = ParsePublicKey(enc)
		if tt.prefix == SS58Prefix && err != nil || tt.prefix != SS58Prefix && !errors.Is(err, ErrAddressPrefix) {
			t.Errorf("prefix %d: ParsePublicKey err = %v", tt.prefix, err)
		}
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	raw := base58.Decode(aliceSS58)
	badSum := append([]byte(nil), raw...)
	badSum[len(badSum)-1] ^= 1
	short := append([]byte(nil), raw[:len(raw)-1]...)
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrAddressEncoding},
		{"not base58 (0)", "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQ0", ErrAddressEncoding},
		{"not base58 (space)", " " + aliceSS58, ErrAddressEncoding},
		{"hex key", alicePubHex, ErrAddressEncoding},
		{"too short", base58.Encode(short), ErrAddressLength},
		{"too long", base58.Encode(append(append([]byte(nil), raw...), 0)), ErrAddressLength},
		{"bad checksum", base58.Encode(badSum), ErrAddressChecksum},
		{"mistyped character", aliceSS58[:47] + "Z", ErrAddressChecksum},
		{"polkadot prefix", "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5", ErrAddressPrefix},
		{"reserved prefix byte", base58.Encode(append([]byte{0x80}, raw[1:]...)), ErrAddressPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePublicKey(tt.in)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrAddressEncoding, ErrAddressLength, ErrAddressChecksum, ErrAddressPrefix} {
				if other != tt.want && errors.Is(err, other) {
					t.Fatalf("err %v also matches %v", err, other)
				}
			}
			if !strings.HasPrefix(err.Error(), "invalid SS58 address") {
				t.Fatalf("message %q", err)
			}
		})
	}
}
