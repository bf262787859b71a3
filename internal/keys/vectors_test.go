package keys

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorsDir finds the shared test vectors: $HORDE_VECTORS_DIR, else shared/vectors inside
// or next to the module root (the directory holding go.mod, found by walking up).
func vectorsDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("HORDE_VECTORS_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			for _, c := range []string{filepath.Join(dir, "shared", "vectors"), filepath.Join(dir, "..", "shared", "vectors")} {
				if _, err := os.Stat(filepath.Join(c, "upstream_messages.json")); err == nil {
					return c
				}
			}
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Skip("shared/vectors not found next to the module root; set HORDE_VECTORS_DIR")
	return ""
}

type upstreamVectors struct {
	Keys map[string]struct {
		URI          string `json:"uri"`
		SS58Format   int    `json:"ss58_format"`
		SS58Address  string `json:"ss58_address"`
		PublicKeyHex string `json:"public_key_hex"`
	} `json:"keys"`
	Signatures []struct {
		ID                 string `json:"id"`
		Signer             string `json:"signer"`
		SignerSS58         string `json:"signer_ss58"`
		SignerPublicKeyHex string `json:"signer_public_key_hex"`
		MessageHex         string `json:"message_hex"`
		Signature          string `json:"signature"`
	} `json:"signatures"`
}

func loadVectors(t *testing.T) upstreamVectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir(t), "upstream_messages.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v upstreamVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVectorKeys(t *testing.T) {
	v := loadVectors(t)
	if len(v.Keys) == 0 {
		t.Fatal("no keys in vectors")
	}
	for name, k := range v.Keys {
		t.Run(name, func(t *testing.T) {
			kp, err := FromURI(k.URI)
			if err != nil {
				t.Fatal(err)
			}
			if k.SS58Format != SS58Prefix {
				t.Fatalf("vector ss58 format %d", k.SS58Format)
			}
			if got := kp.SS58(); got != k.SS58Address {
				t.Errorf("ss58 %s, want %s", got, k.SS58Address)
			}
			if got := kp.Public().Hex(); got != k.PublicKeyHex {
				t.Errorf("public %s, want %s", got, k.PublicKeyHex)
			}
		})
	}
}

func TestVectorSignatures(t *testing.T) {
	v := loadVectors(t)
	if len(v.Signatures) < 25 {
		t.Fatalf("%d signatures in vectors, want at least 25", len(v.Signatures))
	}
	alice, _ := FromURI("//Alice")
	bob, _ := FromURI("//Bob")
	for _, s := range v.Signatures {
		t.Run(s.ID, func(t *testing.T) {
			msg, err := hex.DecodeString(strings.TrimPrefix(s.MessageHex, "0x"))
			if err != nil {
				t.Fatal(err)
			}
			signer, err := FromURI(s.Signer)
			if err != nil {
				t.Fatal(err)
			}
			if signer.SS58() != s.SignerSS58 || signer.Public().Hex() != s.SignerPublicKeyHex {
				t.Fatalf("signer %s derives %s", s.Signer, signer.SS58())
			}
			if err := Verify(s.SignerSS58, msg, s.Signature); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			sig, err := ParseSignature(s.Signature)
			if err != nil {
				t.Fatal(err)
			}
			if sig.Hex() != strings.ToLower(s.Signature) {
				t.Errorf("Hex round trip %s", sig.Hex())
			}
			other := alice
			if signer.Public() == alice.Public() {
				other = bob
			}
			if other.Public().Verify(msg, sig) {
				t.Error("wrong key verified")
			}
			bad := sig
			bad[5] ^= 0x01
			if signer.Public().Verify(msg, bad) {
				t.Error("flipped signature byte verified")
			}
			if len(msg) > 0 {
				tampered := append([]byte(nil), msg...)
				tampered[len(tampered)-1] ^= 0x01
				if signer.Public().Verify(tampered, sig) {
					t.Error("tampered message verified")
				}
			}
		})
	}
}
