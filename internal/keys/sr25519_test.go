package keys

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

const (
	aliceSS58   = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
	alicePubHex = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
	aliceSeed   = "e5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a"
	bobSS58     = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
	bobSeed     = "398f0c28f98885e046333d4a41c19cee4c37368a9832c6502f6cfd182e2aef89"
)

func mustURI(t testing.TB, uri string) *Keypair {
	t.Helper()
	kp, err := FromURI(uri)
	if err != nil {
		t.Fatalf("FromURI: %v", err)
	}
	return kp
}

func TestAliceFromSeed(t *testing.T) {
	seed, _ := hex.DecodeString(aliceSeed)
	kp, err := FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if kp.Public().Hex() != alicePubHex || kp.SS58() != aliceSS58 {
		t.Fatalf("got %s %s", kp.Public().Hex(), kp.SS58())
	}
	if kp.Public() != mustURI(t, "//Alice").Public() {
		t.Fatal("seed and //Alice differ")
	}
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := FromSeed(make([]byte, n)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("FromSeed(%d bytes) = %v, want ErrInvalidKey", n, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	alice, bob := mustURI(t, "//Alice"), mustURI(t, "//Bob")
	msg := []byte("validator:miner:1700000000")
	sig := alice.Sign(msg)
	if sig2 := alice.Sign(msg); sig2 == sig {
		t.Error("two signatures are identical; signing should be randomised")
	}
	flipped := sig
	flipped[10] ^= 0x80
	unmarked := sig
	unmarked[63] &^= 0x80
	tests := []struct {
		name string
		pub  PublicKey
		msg  []byte
		sig  Signature
		want bool
	}{
		{"valid", alice.Public(), msg, sig, true},
		{"tampered message", alice.Public(), []byte("validator:miner:1700000001"), sig, false},
		{"empty message", alice.Public(), nil, sig, false},
		{"flipped signature byte", alice.Public(), msg, flipped, false},
		{"schnorrkel marker bit cleared", alice.Public(), msg, unmarked, false},
		{"wrong key", bob.Public(), msg, sig, false},
		{"zero key", PublicKey{}, msg, sig, false},
		{"zero signature", alice.Public(), msg, Signature{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.pub.Verify(tt.msg, tt.sig); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerifyBytesWrapping(t *testing.T) {
	alice := mustURI(t, "//Alice")
	msg := []byte("hello")
	wrapped := []byte("<Bytes>hello</Bytes>")
	if !alice.Public().Verify(msg, alice.Sign(wrapped)) {
		t.Error("signature over <Bytes>msg</Bytes> not accepted for msg")
	}
	if !alice.Public().Verify(wrapped, alice.Sign(wrapped)) {
		t.Error("signature over an already wrapped message not accepted")
	}
	if alice.Public().Verify(wrapped, alice.Sign(msg)) {
		t.Error("signature over msg accepted for <Bytes>msg</Bytes>")
	}
	if alice.Public().Verify([]byte("other"), alice.Sign(wrapped)) {
		t.Error("wrapped signature accepted for another message")
	}
	if err := Verify(aliceSS58, msg, alice.Sign(wrapped).Hex()); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestParseSignature(t *testing.T) {
	good := strings.Repeat("ab", 64)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"lowercase", "0x" + good, ""},
		{"uppercase digits", "0x" + strings.ToUpper(good), ""},
		{"no prefix", good, "missing 0x prefix"},
		{"0X prefix", "0X" + good, "missing 0x prefix"},
		{"empty", "", "missing 0x prefix"},
		{"short", "0x" + good[:126], "126 hex digits after 0x, want 128"},
		{"long", "0x" + good + "00", "130 hex digits after 0x, want 128"},
		{"not hex", "0x" + good[:127] + "g", "not hexadecimal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := ParseSignature(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if sig.Hex() != "0x"+good {
					t.Fatalf("Hex = %s", sig.Hex())
				}
				return
			}
			if !errors.Is(err, ErrMalformedSignature) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if len(tt.in) > 8 && strings.Contains(err.Error(), tt.in[2:10]) {
				t.Fatalf("error echoes the input: %v", err)
			}
		})
	}
}

func TestVerifyFunc(t *testing.T) {
	alice := mustURI(t, "//Alice")
	msg := []byte("payload")
	sig := alice.Sign(msg).Hex()
	tests := []struct {
		name string
		ss58 string
		msg  string
		sig  string
		want error
	}{
		{"ok", aliceSS58, "payload", sig, nil},
		{"wrong signer", bobSS58, "payload", sig, ErrBadSignature},
		{"other message", aliceSS58, "payload!", sig, ErrBadSignature},
		{"bad address", "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ", "payload", sig, ErrInvalidAddress},
		{"bad signature", aliceSS58, "payload", sig[2:], ErrMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.ss58, []byte(tt.msg), tt.sig)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeypairDoesNotPrintSecret(t *testing.T) {
	kp := mustURI(t, "//Alice")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, kp)
		if strings.Contains(out, aliceSeed[:16]) || strings.Contains(strings.ToLower(out), hex.EncodeToString(kp.secretBytes()[:8])) {
			t.Errorf("%s prints the secret: %s", verb, out)
		}
		if verb != "%x" && !strings.Contains(out, aliceSS58) {
			t.Errorf("%s = %s, want the SS58 address", verb, out)
		}
	}
}

func TestPublicKeyHex(t *testing.T) {
	p, err := ParsePublicKeyHex(alicePubHex)
	if err != nil || p.SS58() != aliceSS58 || p.String() != aliceSS58 {
		t.Fatalf("%v %s", err, p)
	}
	for _, bad := range []string{"", "0x", alicePubHex[:64], alicePubHex + "00", "0x" + strings.Repeat("zz", 32)} {
		if _, err := ParsePublicKeyHex(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParsePublicKeyHex(%q) = %v", bad, err)
		}
	}
}

func TestConcurrentSignVerify(t *testing.T) {
	alice := mustURI(t, "//Alice")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Appendf(nil, "msg %d", i)
			for range 5 {
				// A fresh PublicKey value each time also exercises the shared decode cache.
				pub, _ := ParsePublicKey(aliceSS58)
				if !pub.Verify(msg, alice.Sign(msg)) {
					t.Error("concurrent verify failed")
				}
			}
		}()
	}
	wg.Wait()
}

// TestSubkeySignature verifies the Rust subkey signature published in subkey's README.
func TestSubkeySignature(t *testing.T) {
	const (
		addr = "5Hpm9fq3W3dQgwWpAwDS2ZHKAdnk86QRCu7iX4GnmDxycrte"
		sig  = "0x9201af3788ad4f986b800853c79da47155f2e08fde2070d866be4c27ab060466fea0623dc2b51f4392f4c61f25381a62848dd66c5d8217fae3858e469ebd668c"
	)
	if err := Verify(addr, []byte("hello"), sig); err != nil {
		t.Fatal(err)
	}
	if err := Verify(addr, []byte("hello!"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other message: %v", err)
	}
}
