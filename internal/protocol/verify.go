package protocol

import (
	"errors"
	"fmt"

	"github.com/computehorde/horde/internal/keys"
)

// Signature verification helpers. They check the signature only: callers still
// decide whether the signer is acceptable (the expected hotkey, a whitelisted
// signatory, a fresh timestamp, ...). Errors wrap keys.ErrBadSignature when a
// well-formed signature does not verify, or the keys package's parse errors.

// ErrNoSignature is returned when a message carries no signature to verify.
var ErrNoSignature = errors.New("protocol: no signature")

// VerifyValidatorSignature verifies ValidatorSignature by the payload's validator hotkey.
func (r Receipt) VerifyValidatorSignature() error {
	if r.Payload == nil {
		return ErrNoSignature
	}
	return verifyHex("receipt validator_signature", r.Payload.Header().ValidatorHotkey,
		r.Payload.BlobForSigning(), r.ValidatorSignature)
}

// VerifyMinerSignature verifies MinerSignature by the payload's miner hotkey.
func (r Receipt) VerifyMinerSignature() error {
	if r.Payload == nil || r.MinerSignature == nil {
		return ErrNoSignature
	}
	return verifyHex("receipt miner_signature", r.Payload.Header().MinerHotkey,
		r.Payload.BlobForSigning(), *r.MinerSignature)
}

// VerifySignature verifies the auth signature by ValidatorHotkey.
func (m ValidatorAuthForMiner) VerifySignature() error {
	return verifyHex("ValidatorAuthForMiner signature", m.ValidatorHotkey, m.BlobForSigning(), m.Signature)
}

// VerifyReceiptSignature verifies the JobStarted receipt's validator signature.
func (m V0InitialJobRequest) VerifyReceiptSignature() error {
	p := m.JobStartedReceiptPayload
	return verifyHex("job_started_receipt_signature", p.ValidatorHotkey, p.BlobForSigning(),
		m.JobStartedReceiptSignature)
}

// VerifySignature verifies the receipt's validator signature.
func (m V0JobAcceptedReceiptRequest) VerifySignature() error {
	return verifyHex("receipt signature", m.Payload.ValidatorHotkey, m.Payload.BlobForSigning(), m.Signature)
}

// VerifySignature verifies the receipt's validator signature.
func (m V0JobFinishedReceiptRequest) VerifySignature() error {
	return verifyHex("receipt signature", m.Payload.ValidatorHotkey, m.Payload.BlobForSigning(), m.Signature)
}

// VerifySignature verifies the receipt's validator signature.
func (m V0WorkIntervalReceiptRequest) VerifySignature() error {
	return verifyHex("receipt signature", m.Payload.ValidatorHotkey, m.Payload.BlobForSigning(), m.Signature)
}

// VerifyMinerSignature verifies MinerSignature by minerHotkey (SS58).
func (m V0StreamingJobReadyRequest) VerifyMinerSignature(minerHotkey string) error {
	if m.MinerSignature == nil {
		return ErrNoSignature
	}
	return verifyHex("miner_signature", minerHotkey, m.BlobForSigning(), *m.MinerSignature)
}

// SS58 returns the SS58 address (prefix 42) of PublicKey.
func (m V0AuthenticationRequest) SS58() (string, error) {
	b, err := m.BlobForSigning()
	if err != nil {
		return "", err
	}
	return keys.PublicKey(b).SS58(), nil
}

// VerifySignature verifies that Signature is PublicKey's signature of its own 32 bytes.
func (m V0AuthenticationRequest) VerifySignature() error {
	b, err := m.BlobForSigning()
	if err != nil {
		return err
	}
	sig, err := keys.ParseSignature(m.Signature)
	if err != nil {
		return fmt.Errorf("protocol: V0AuthenticationRequest signature: %w", err)
	}
	if !keys.PublicKey(b).Verify(b, sig) {
		return fmt.Errorf("protocol: V0AuthenticationRequest signature: %w", keys.ErrBadSignature)
	}
	return nil
}

// VerifyDigest verifies the signature over a compute_horde_core digest by Signatory.
func (s Signature) VerifyDigest(digest [64]byte) error {
	if s.SignatureType != "bittensor" {
		return fmt.Errorf("protocol: unsupported signature_type %q (want \"bittensor\")", s.SignatureType)
	}
	pub, err := keys.ParsePublicKey(s.Signatory)
	if err != nil {
		return fmt.Errorf("protocol: signatory: %w", err)
	}
	if len(s.Signature) != len(keys.Signature{}) {
		return fmt.Errorf("protocol: signature is %d bytes, want 64: %w", len(s.Signature), keys.ErrMalformedSignature)
	}
	if !pub.Verify(digest[:], keys.Signature(s.Signature)) {
		return fmt.Errorf("protocol: signature by %s: %w", s.Signatory, keys.ErrBadSignature)
	}
	return nil
}

// VerifySignature verifies the request's SignedFields signature by its signatory.
func (m *V2JobRequest) VerifySignature() error {
	if m.Signature == nil {
		return ErrNoSignature
	}
	if m.Signature.SignatureScope != SignatureScopeSignedFields {
		return fmt.Errorf("protocol: V2JobRequest signature scope %q, want SignedFields", m.Signature.SignatureScope)
	}
	d, err := m.SignedPayloadDigest()
	if err != nil {
		return err
	}
	return m.Signature.VerifyDigest(d)
}

// VerifySignature verifies the report's FullRequest signature by its signatory.
func (m *V0JobCheated) VerifySignature() error {
	if m.Signature == nil {
		return ErrNoSignature
	}
	d, err := m.SignedPayloadDigest()
	if err != nil {
		return err
	}
	return m.Signature.VerifyDigest(d)
}

func verifyHex(what, ss58 string, msg []byte, sigHex string) error {
	if err := keys.Verify(ss58, msg, sigHex); err != nil {
		return fmt.Errorf("protocol: %s: %w", what, err)
	}
	return nil
}
