package keys

import (
	"crypto/subtle"
	"io"

	r255 "github.com/gtank/ristretto255"
)

// The sr25519 signature itself, written step for step like schnorrkel's sign.rs on the
// ristretto255 package go-schnorrkel uses and a merlin transcript (transcript.go). A Keypair
// signs with its cached scalar and public key and hedges its nonce as Rust schnorrkel does;
// verification compares the recomputed R in compressed form, as Rust schnorrkel does, without
// decoding R or recomputing the public key per call. Key expansion and derivation stay in
// go-schnorrkel. Tests check both directions against go-schnorrkel, polkadot.js and subkey.

var (
	labelEmpty      = []byte{}
	labelSignBytes  = []byte("sign-bytes")
	labelProtoName  = []byte("proto-name")
	protoSchnorrSig = []byte("Schnorr-sig")
	labelSignPK     = []byte("sign:pk")
	labelSignR      = []byte("sign:R")
	labelSignC      = []byte("sign:c")
	labelSigning    = []byte("signing")
)

// signingBase is the transcript after schnorrkel's "SigningContext" domain separator and the
// "substrate" context. Every signature starts from a clone of it; it is never written after
// init, so concurrent clones are safe.
var signingBase = func() transcript {
	t := newTranscript("SigningContext")
	t.append(labelEmpty, signingContext)
	return t
}()

// signingTranscript returns the transcript that signer and verifier share up to R: context,
// message, protocol name and public key, in schnorrkel's order.
func signingTranscript(pub *PublicKey, msg []byte) transcript {
	t := signingBase.clone()
	t.append(labelSignBytes, msg)
	t.append(labelProtoName, protoSchnorrSig)
	t.append(labelSignPK, pub[:])
	return t
}

// challenge appends R to a signing transcript and returns k = H(transcript).
func (t transcript) challenge(compressedR []byte) *r255.Scalar {
	t.append(labelSignR, compressedR)
	return t.challengeScalar(labelSignC)
}

// sign returns (R, s) = (r·B, k·x + r), with the schnorrkel marker bit. As in schnorrkel,
// r is witness_scalar("signing", key nonce) on the transcript up to the public key, with 32
// bytes from random: a random source that repeats or fails then gives the nonce of a
// deterministic scheme, which is safe, instead of reusing r across messages, which reveals x.
// Like schnorrkel, it does not reject r = 0 (probability 2^-252).
func (k *Keypair) sign(msg []byte, random io.Reader) Signature {
	var sig Signature
	t := signingTranscript(&k.pub, msg)
	r := t.witnessScalar(labelSigning, k.nonce[:], random)
	r255.NewElement().ScalarBaseMult(r).Encode(sig[:0])
	s := r255.NewScalar().Multiply(t.challenge(sig[:32]), k.x)
	s.Add(s, r)
	s.Encode(sig[:32])
	sig[63] |= 0x80
	return sig
}

// schnorrVerify checks R == compress(k·(−A) + s·B). negA is the negated public key point,
// which callers cache.
func schnorrVerify(negA *r255.Element, pub *PublicKey, msg []byte, sig *Signature) bool {
	s, ok := sigScalar(sig)
	if !ok {
		return false
	}
	return schnorrVerifyScalar(negA, pub, msg, sig, s)
}

// sigScalar decodes s from a signature; it fails without the schnorrkel marker bit or when s
// is not canonical.
func sigScalar(sig *Signature) (*r255.Scalar, bool) {
	if sig[63]&0x80 == 0 {
		return nil, false
	}
	var b [32]byte
	copy(b[:], sig[32:])
	b[31] &= 0x7f
	s := r255.NewScalar()
	if s.Decode(b[:]) != nil {
		return nil, false
	}
	return s, true
}

func schnorrVerifyScalar(negA *r255.Element, pub *PublicKey, msg []byte, sig *Signature, s *r255.Scalar) bool {
	k := signingTranscript(pub, msg).challenge(sig[:32])
	var enc [32]byte
	r255.NewElement().VarTimeDoubleScalarBaseMult(k, negA, s).Encode(enc[:0])
	return subtle.ConstantTimeCompare(enc[:], sig[:32]) == 1
}

// identity is the ristretto255 identity element; a public key equal to it is rejected.
var identity = r255.NewElement().Zero()

// decodeNegated decodes a compressed public key and returns −A; it fails for an invalid
// encoding and for the identity.
func decodeNegated(p PublicKey) (*r255.Element, bool) {
	a := r255.NewElement()
	if a.Decode(p[:]) != nil || a.Equal(identity) == 1 {
		return nil, false
	}
	return a.Negate(a), true
}
