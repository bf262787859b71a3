package keys

import (
	"crypto/rand"
	"crypto/subtle"

	"github.com/gtank/merlin"
	r255 "github.com/gtank/ristretto255"
)

// The sr25519 signature itself, written against the same merlin and ristretto255 packages
// go-schnorrkel uses and step for step like schnorrkel's sign.rs, so that a Keypair signs
// with its cached scalar and public key, and verification compares the recomputed R in
// compressed form as Rust schnorrkel does, without decoding R or recomputing the public key
// per call. Key expansion and derivation stay in go-schnorrkel. Tests check both directions
// against go-schnorrkel, polkadot.js and subkey.

var (
	labelSigningContext = "SigningContext"
	labelEmpty          = []byte{}
	labelSignBytes      = []byte("sign-bytes")
	labelProtoName      = []byte("proto-name")
	protoSchnorrSig     = []byte("Schnorr-sig")
	labelSignPK         = []byte("sign:pk")
	labelSignR          = []byte("sign:R")
	labelSignC          = []byte("sign:c")
)

// challenge returns k = H(transcript) for the "substrate" context, msg, public key and R.
func challenge(pub *PublicKey, msg, compressedR []byte) *r255.Scalar {
	t := merlin.NewTranscript(labelSigningContext)
	t.AppendMessage(labelEmpty, signingContext)
	t.AppendMessage(labelSignBytes, msg)
	t.AppendMessage(labelProtoName, protoSchnorrSig)
	t.AppendMessage(labelSignPK, pub[:])
	t.AppendMessage(labelSignR, compressedR)
	return r255.NewScalar().FromUniformBytes(t.ExtractBytes(labelSignC, 64))
}

// schnorrSign returns (R, s) = (r·B, k·x + r) for a random r, with the schnorrkel marker bit.
func schnorrSign(x *r255.Scalar, pub *PublicKey, msg []byte) Signature {
	var sig Signature
	var seed [64]byte
	r := r255.NewScalar()
	zero := r255.NewScalar()
	for {
		_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails
		if r.FromUniformBytes(seed[:]).Equal(zero) == 0 {
			break
		}
	}
	r255.NewElement().ScalarBaseMult(r).Encode(sig[:0])
	k := challenge(pub, msg, sig[:32])
	s := r255.NewScalar().Multiply(k, x)
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
	k := challenge(pub, msg, sig[:32])
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
