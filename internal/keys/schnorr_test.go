package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
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

// constReader is a broken random source that returns the same byte forever.
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// failingReader is a random source that fails at once.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

// signWithNonce signs with a given r, as a signer that draws r from its random source alone
// does.
func signWithNonce(kp *Keypair, msg []byte, r *r255.Scalar) Signature {
	var sig Signature
	r255.NewElement().ScalarBaseMult(r).Encode(sig[:0])
	s := r255.NewScalar().Multiply(signingTranscript(&kp.pub, msg).challenge(sig[:32]), kp.x)
	s.Add(s, r).Encode(sig[:32])
	sig[63] |= 0x80
	return sig
}

// recoverKey returns (s1 − s2) / (k1 − k2): the secret key when both signatures share R.
func recoverKey(pub PublicKey, m1, m2 []byte, sig1, sig2 Signature) *r255.Scalar {
	s1, _ := sigScalar(&sig1)
	s2, _ := sigScalar(&sig2)
	k1 := signingTranscript(&pub, m1).challenge(sig1[:32])
	k2 := signingTranscript(&pub, m2).challenge(sig2[:32])
	ds := r255.NewScalar().Subtract(s1, s2)
	dk := r255.NewScalar().Subtract(k1, k2)
	return ds.Multiply(ds, dk.Invert(dk))
}

// TestSignHedgedNonce shows what hedging buys. A signer whose nonce comes from a stuck random
// source alone reuses R across messages, and two such signatures give away the secret key.
// Ours, from the same stuck or failing source, use a different R for each message and each
// key, sign deterministically (the same R only ever meets the same challenge), and still
// verify with go-schnorrkel.
func TestSignHedgedNonce(t *testing.T) {
	alice, bob := mustURI(t, "//Alice"), mustURI(t, "//Bob")
	m1, m2 := []byte("validator:miner:1"), []byte("validator:miner:2")

	stuck := r255.NewScalar().FromUniformBytes(bytes.Repeat([]byte{0x42}, 64))
	if recoverKey(alice.pub, m1, m2, signWithNonce(alice, m1, stuck), signWithNonce(alice, m2, stuck)).Equal(alice.x) != 1 {
		t.Fatal("key recovery from a reused nonce does not work; the checks below would prove nothing")
	}

	// The same scalar with another secret-key nonce: the key's nonce, which only the signer
	// knows, keys the derivation, so r cannot be computed from the message and a stuck source.
	key := alice.sk.Encode()
	aliceOtherNonce, err := fromSecretBytes(append(key[:], bytes.Repeat([]byte{1}, 32)...))
	if err != nil || aliceOtherNonce.pub != alice.pub {
		t.Fatalf("re-nonced key: %v", err)
	}

	for name, random := range map[string]io.Reader{"zeros": constReader(0), "constant": constReader(0x42), "failing": failingReader{}} {
		t.Run(name, func(t *testing.T) {
			s1, s2 := alice.sign(m1, random), alice.sign(m2, random)
			if [32]byte(s1[:32]) == [32]byte(s2[:32]) {
				t.Fatal("same R for two messages")
			}
			if recoverKey(alice.pub, m1, m2, s1, s2).Equal(alice.x) == 1 {
				t.Fatal("secret key recovered from two signatures")
			}
			if b := bob.sign(m1, random); [32]byte(b[:32]) == [32]byte(s1[:32]) {
				t.Error("same R for two keys")
			}
			if o := aliceOtherNonce.sign(m1, random); [32]byte(o[:32]) == [32]byte(s1[:32]) {
				t.Error("same R for two secret-key nonces")
			}
			if again := alice.sign(m1, random); again != s1 {
				t.Error("a stuck random source should make signing deterministic")
			}
			for _, c := range []struct {
				msg []byte
				sig Signature
			}{{m1, s1}, {m2, s2}} {
				if !alice.pub.Verify(c.msg, c.sig) || !schnorrkelVerify(t, alice.pub, c.msg, c.sig) {
					t.Errorf("signature of %q does not verify", c.msg)
				}
			}
		})
	}
}

// TestSignNonceVector pins the nonce derivation: //Alice signs "hello" with an all-zero
// random source. When this test was written, r matched a line-by-line port of Rust merlin's
// Strobe128 and TranscriptRng that shares no code with StrobeGo; Rust itself was not run.
func TestSignNonceVector(t *testing.T) {
	const want = "0xe28c30f4af7f3ed42bbf7cf458f65bca1eba691ed1f5d51db8df2a0214aef91df9e49a7fd71377e4154ac00c9a6806aced19f383a7f1fa96a58436036317768b"
	alice := mustURI(t, "//Alice")
	sig := alice.sign([]byte("hello"), constReader(0))
	if sig.Hex() != want {
		t.Errorf("signature %s, want %s", sig.Hex(), want)
	}
	if !schnorrkelVerify(t, alice.pub, []byte("hello"), sig) {
		t.Error("go-schnorrkel rejects the signature")
	}
}
