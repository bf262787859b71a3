package keys

import (
	"encoding/binary"
	"io"

	r255 "github.com/gtank/ristretto255"
	"github.com/mimoo/StrobeGo/strobe"
)

// transcript is a merlin transcript: STROBE-128 operation for operation like gtank/merlin,
// which go-schnorrkel signs with, plus the TranscriptRng that Rust merlin has and
// gtank/merlin lacks. It sits on StrobeGo, the STROBE package under gtank/merlin, because a
// TranscriptRng clones the STROBE state and runs KEY on it, and gtank/merlin keeps that state
// private.
type transcript struct{ s *strobe.Strobe }

var (
	labelDomSep = []byte("dom-sep")
	labelRNG    = []byte("rng")
)

// newTranscript is merlin's Transcript::new.
func newTranscript(label string) transcript {
	s := strobe.InitStrobe("Merlin v1.0", 128)
	t := transcript{&s}
	t.append(labelDomSep, []byte(label))
	return t
}

func (t transcript) clone() transcript { return transcript{t.s.Clone()} }

// metaAD is merlin's framing of an operation: meta-AD(label || LE32(n)).
func metaAD(s *strobe.Strobe, label []byte, n int) {
	var buf [32]byte // longer than any label here, so the framing does not allocate
	s.AD(true, binary.LittleEndian.AppendUint32(append(buf[:0], label...), uint32(n)))
}

// append is merlin's append_message.
func (t transcript) append(label, msg []byte) {
	metaAD(t.s, label, len(msg))
	t.s.AD(false, msg)
}

// challengeScalar is schnorrkel's challenge_scalar: 64 bytes of merlin challenge_bytes,
// reduced mod l.
func (t transcript) challengeScalar(label []byte) *r255.Scalar {
	metaAD(t.s, label, 64)
	return r255.NewScalar().FromUniformBytes(t.s.PRF(64))
}

// witnessScalar is schnorrkel's witness_scalar(label, &[witness]) on a merlin transcript:
// build_rng (a clone, so t is unchanged), rekey_with_witness_bytes(label, witness),
// finalize with 32 bytes from random, then 64 bytes of output reduced mod l. The scalar is a
// PRF of the transcript, the witness and the random bytes, so it stays secret and differs
// between transcripts even when random repeats or fails.
func (t transcript) witnessScalar(label, witness []byte, random io.Reader) *r255.Scalar {
	rng := t.s.Clone()
	metaAD(rng, label, len(witness))
	rng.KEY(witness)
	var fresh [32]byte
	// A failed read leaves zeros (crypto/rand's never fails); the witness still covers it.
	_, _ = io.ReadFull(random, fresh[:])
	rng.AD(true, labelRNG)
	rng.KEY(fresh[:])
	metaAD(rng, nil, 64)
	return r255.NewScalar().FromUniformBytes(rng.PRF(64))
}
