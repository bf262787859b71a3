package keys

import (
	"crypto/rand"
	"fmt"
	"testing"

	schnorrkel "github.com/ChainSafe/go-schnorrkel"
	r255 "github.com/gtank/ristretto255"
)

func schnorrkelVerify(t *testing.T, pub PublicKey, msg []byte, sig Signature) bool {
	t.Helper()
	pk, err := schnorrkel.NewPublicKey(pub)
	if err != nil {
		return false
	}
	var s schnorrkel.Signature
	if s.Decode(sig) != nil {
		return false
	}
	ok, err := pk.Verify(&s, schnorrkel.NewSigningContext([]byte(SigningContext), msg))
	return err == nil && ok
}

func schnorrkelSign(t *testing.T, seed []byte, msg []byte) Signature {
	t.Helper()
	var raw [32]byte
	copy(raw[:], seed)
	msk, _ := schnorrkel.NewMiniSecretKeyFromRaw(raw)
	s, err := msk.ExpandEd25519().Sign(schnorrkel.NewSigningContext([]byte(SigningContext), msg))
	if err != nil {
		t.Fatal(err)
	}
	return s.Encode()
}

// TestAgainstSchnorrkel checks the signer and verifier against go-schnorrkel in both
// directions, and that both accept and reject the same mutated inputs.
func TestAgainstSchnorrkel(t *testing.T) {
	for i := range 20 {
		seed := make([]byte, 32)
		rand.Read(seed)
		kp, err := FromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Appendf(nil, "message %d", i)
		ours := kp.Sign(msg)
		if !schnorrkelVerify(t, kp.Public(), msg, ours) {
			t.Fatalf("go-schnorrkel rejects our signature %d", i)
		}
		theirs := schnorrkelSign(t, seed, msg)
		if !kp.Public().Verify(msg, theirs) {
			t.Fatalf("we reject go-schnorrkel's signature %d", i)
		}
		for j := range 8 {
			bad := ours
			bit := (i*8 + j) * 37 % 512
			bad[bit/8] ^= 1 << (bit % 8)
			if got, want := kp.Public().Verify(msg, bad), schnorrkelVerify(t, kp.Public(), msg, bad); got != want || got {
				t.Fatalf("bit %d flipped: ours %v, go-schnorrkel %v", bit, got, want)
			}
		}
	}
}

func TestVerifyRejectsDegenerate(t *testing.T) {
	kp := mustURI(t, "//Alice")
	msg := []byte("m")
	sig := kp.Sign(msg)

	// s + l is the same scalar but not canonical: both implementations reject it.
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	nc := sig
	nc[63] &= 0x7f
	carry := 0
	for i := range 32 {
		v := int(nc[32+i]) + int(l[i]) + carry
		nc[32+i], carry = byte(v), v>>8
	}
	if nc[63]&0x80 == 0 && carry == 0 {
		nc[63] |= 0x80
		if kp.Public().Verify(msg, nc) || schnorrkelVerify(t, kp.Public(), msg, nc) {
			t.Error("non-canonical s accepted")
		}
	}

	// The identity as public key would let anyone sign: (R, s) = (s·B, s) verifies for any s.
	s, _ := sigScalar(&sig)
	var forged Signature
	r255.NewElement().ScalarBaseMult(s).Encode(forged[:0])
	s.Encode(forged[:32])
	forged[63] |= 0x80
	negIdentity := r255.NewElement().Zero()
	var zero PublicKey
	if !schnorrVerify(negIdentity, &zero, msg, &forged) {
		t.Fatal("test forgery is wrong: it should pass the bare equation")
	}
	if zero.Verify(msg, forged) {
		t.Error("identity public key accepted")
	}
}
