package receiptsync

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/computehorde/horde/internal/keys"
	r255 "github.com/gtank/ristretto255"
	"github.com/mimoo/StrobeGo/strobe"
)

// Batch verification of sr25519 signatures.
//
// Importing a receipt costs two sr25519 verifications, about 40 µs each with
// keys.PublicKey.Verify, which alone would hold one core to some 12,000 receipts per second.
// Random-linear-combination batch verification (as in schnorrkel's verify_batch) checks n
// signatures with one multi-scalar multiplication: for random 128-bit z_i,
//
//	Σ z_i·R_i + Σ_j (Σ_{i signed by j} z_i·k_i)·A_j == (Σ z_i·s_i)·B
//
// where k_i is signature i's challenge. Receipts of one page are signed by one miner and a
// handful of validators, so the A_j terms collapse to a few points and each signature costs
// about one ristretto decode (R) and one point of the multi-scalar multiplication.
//
// The result is the same as keys.PublicKey.Verify's for every signature:
//   - a batch that balances means every signature in it verifies (except with probability
//     2^-128 over z, which an attacker does not know); R decodes only from its canonical
//     encoding, so R == compress(s·B − k·A) exactly when the group elements are equal, and s
//     must carry schnorrkel's marker bit and be canonical, as keys requires;
//   - anything the batch cannot take (an undecodable or identity public key, an R that is not
//     a canonical encoding, a bad s) and every signature of a batch that does not balance is
//     checked on its own by keys.PublicKey.Verify, which also accepts polkadot.js's
//     "<Bytes>…</Bytes>" wrapping. A bad signature therefore costs its batch once more, never
//     a wrong answer.
//
// The transcript is schnorrkel's merlin signing transcript in the "substrate" context, built
// operation for operation like internal/keys' (which does not export it).
//
// TODO(keys owner): this belongs in internal/keys as a BatchVerify next to Verify, where it
// could share the transcript and the decoded-key cache.

var (
	labelDomSep     = []byte("dom-sep")
	labelEmpty      = []byte{}
	labelSignBytes  = []byte("sign-bytes")
	labelProtoName  = []byte("proto-name")
	protoSchnorrSig = []byte("Schnorr-sig")
	labelSignPK     = []byte("sign:pk")
	labelSignR      = []byte("sign:R")
	labelSignC      = []byte("sign:c")
)

// signingBase is merlin's Transcript::new("SigningContext") with the "substrate" context
// appended. It is only ever cloned.
var signingBase = func() *strobe.Strobe {
	s := strobe.InitStrobe("Merlin v1.0", 128)
	appendMessage(&s, labelDomSep, []byte("SigningContext"))
	appendMessage(&s, labelEmpty, []byte(keys.SigningContext))
	return &s
}()

// appendMessage is merlin's append_message: meta-AD(label || LE32(len)), then AD(msg).
func appendMessage(s *strobe.Strobe, label, msg []byte) {
	metaAD(s, label, len(msg))
	s.AD(false, msg)
}

func metaAD(s *strobe.Strobe, label []byte, n int) {
	var buf [32]byte // longer than every label here
	s.AD(true, binary.LittleEndian.AppendUint32(append(buf[:0], label...), uint32(n)))
}

// messageTranscript returns the signing transcript of msg up to the public key, which every
// signature of msg shares; sigCheck clones it.
func messageTranscript(msg []byte) *strobe.Strobe {
	t := signingBase.Clone()
	appendMessage(t, labelSignBytes, msg)
	appendMessage(t, labelProtoName, protoSchnorrSig)
	return t
}

// sigCheck is one signature to verify: sig by pub over msg, whose transcript up to the public
// key is t (from messageTranscript(msg)).
type sigCheck struct {
	pub keys.PublicKey
	sig keys.Signature
	msg []byte
	t   *strobe.Strobe // not modified
	ok  bool           // the result, set by verifyBatch
}

// challenge returns k = H(transcript || pk || R), schnorrkel's challenge scalar.
func (c *sigCheck) challenge() *r255.Scalar {
	t := c.t.Clone()
	appendMessage(t, labelSignPK, c.pub[:])
	appendMessage(t, labelSignR, c.sig[:32])
	metaAD(t, labelSignC, 64)
	return r255.NewScalar().FromUniformBytes(t.PRF(64))
}

// sigS decodes s as keys does: the schnorrkel marker bit must be set, and s canonical.
func sigS(sig *keys.Signature) (*r255.Scalar, bool) {
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

var identity = r255.NewElement().Zero()

// verifyBatch sets ok on every check, with the answer keys.PublicKey.Verify would give. It
// reports whether the batch equation held (for tests: then no check was verified alone).
func verifyBatch(checks []sigCheck) (balanced bool) {
	type keyTerm struct {
		a    *r255.Element // nil when the key does not decode or is the identity
		coef *r255.Scalar
	}
	terms := make(map[keys.PublicKey]*keyTerm, 4)
	zBytes := make([]byte, 16*len(checks))
	_, _ = rand.Read(zBytes) // crypto/rand.Read never fails

	scalars := make([]*r255.Scalar, 0, len(checks)+4)
	points := make([]*r255.Element, 0, len(checks)+4)
	sum := r255.NewScalar()            // Σ z_i·s_i
	alone := make([]bool, len(checks)) // checks the batch cannot take
	batched := 0
	for i := range checks {
		c := &checks[i]
		kt := terms[c.pub]
		if kt == nil {
			kt = &keyTerm{coef: r255.NewScalar()}
			if a := r255.NewElement(); a.Decode(c.pub[:]) == nil && a.Equal(identity) == 0 {
				kt.a = a
			}
			terms[c.pub] = kt
		}
		s, ok := sigS(&c.sig)
		r := r255.NewElement()
		if !ok || kt.a == nil || r.Decode(c.sig[:32]) != nil {
			alone[i] = true
			continue
		}
		var zb [32]byte
		copy(zb[:16], zBytes[16*i:])
		z := r255.NewScalar()
		_ = z.Decode(zb[:]) // < 2^128 < l: always canonical
		kt.coef.Add(kt.coef, r255.NewScalar().Multiply(z, c.challenge()))
		sum.Add(sum, r255.NewScalar().Multiply(z, s))
		scalars = append(scalars, z)
		points = append(points, r)
		batched++
	}
	if batched > 0 {
		for _, kt := range terms {
			if kt.a != nil {
				scalars = append(scalars, kt.coef)
				points = append(points, kt.a)
			}
		}
		lhs := r255.NewElement().VarTimeMultiScalarMult(scalars, points)
		balanced = lhs.Equal(r255.NewElement().ScalarBaseMult(sum)) == 1
		for i := range checks {
			if !alone[i] {
				checks[i].ok = balanced || checks[i].pub.Verify(checks[i].msg, checks[i].sig)
			}
		}
	}
	for i := range checks {
		if alone[i] {
			checks[i].ok = checks[i].pub.Verify(checks[i].msg, checks[i].sig)
			balanced = false
		}
	}
	return balanced
}
