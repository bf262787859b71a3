package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/keys"
)

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i%len(c)] ^= 0x01
	return c
}

// TestVectorSignatures verifies every polkadot.js signature in the vectors, and
// that a flipped byte or the wrong key fails.
func TestVectorSignatures(t *testing.T) {
	vf := loadVectors(t)
	if len(vf.Signatures) != 25 {
		t.Errorf("got %d signatures, want 25", len(vf.Signatures))
	}
	other := map[string]string{
		vf.Keys["alice"].SS58: vf.Keys["bob"].SS58,
		vf.Keys["bob"].SS58:   vf.Keys["alice"].SS58,
	}
	for _, s := range vf.Signatures {
		t.Run(s.ID, func(t *testing.T) {
			pub, err := keys.ParsePublicKey(s.SignerSS58)
			if err != nil {
				t.Fatal(err)
			}
			if got := pub.Hex(); got != s.PublicKeyHex {
				t.Errorf("public key %s, want %s", got, s.PublicKeyHex)
			}
			sig, err := keys.ParseSignature(s.Signature)
			if err != nil {
				t.Fatal(err)
			}
			msg := mustHex(t, s.MessageHex)
			if s.BlobID != nil && !bytes.Equal(msg, blobByID(t, vf, *s.BlobID)) {
				t.Errorf("message_hex differs from signing_blobs[%s]", *s.BlobID)
			}
			if !pub.Verify(msg, sig) {
				t.Fatal("valid signature rejected")
			}
			if pub.Verify(flip(msg, len(msg)/2), sig) {
				t.Error("signature accepted over a modified message")
			}
			badSig := keys.Signature(flip(sig[:], 10))
			if pub.Verify(msg, badSig) {
				t.Error("modified signature accepted")
			}
			wrong, err := keys.ParsePublicKey(other[s.SignerSS58])
			if err != nil {
				t.Fatal(err)
			}
			if wrong.Verify(msg, sig) {
				t.Error("signature accepted for the wrong key")
			}
		})
	}
}

// TestVectorEmbeddedSignatures verifies every signature embedded in a vector
// message over the bytes this package rebuilds from the decoded message.
func TestVectorEmbeddedSignatures(t *testing.T) {
	vf := loadVectors(t)
	for _, sm := range embeddedSignatures(t, vf) {
		t.Run(sm.name, func(t *testing.T) {
			if err := keys.Verify(sm.signer, sm.message, sm.signature); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if err := keys.Verify(sm.signer, flip(sm.message, 7), sm.signature); !errors.Is(err, keys.ErrBadSignature) {
				t.Errorf("flipped message: %v, want ErrBadSignature", err)
			}
			wrong := vf.Keys["alice"].SS58
			if sm.signer == wrong {
				wrong = vf.Keys["bob"].SS58
			}
			if err := keys.Verify(wrong, sm.message, sm.signature); !errors.Is(err, keys.ErrBadSignature) {
				t.Errorf("wrong key: %v, want ErrBadSignature", err)
			}
		})
	}
}

// TestVerifyHelpers exercises the message-level verification helpers on the
// vectors, and checks that tampering with a signed field fails.
func TestVerifyHelpers(t *testing.T) {
	vf := loadVectors(t)
	checked := 0
	for i, v := range vf.Messages {
		if len(v.Embedded) == 0 {
			continue
		}
		t.Run(vectorName(i, v), func(t *testing.T) {
			var m Message
			var err error
			switch {
			case v.Model == "Receipt":
				m, err = DecodeReceipt([]byte(v.JSON))
			case v.Channel == "facilitator->validator":
				m, err = DecodeFacilitatorToValidator([]byte(v.JSON))
			case v.Channel == "validator->facilitator":
				m, err = DecodeValidatorToFacilitator([]byte(v.JSON))
			default:
				m, err = Decode(unionByName[v.Unions[0]], []byte(v.JSON))
			}
			if err != nil {
				t.Fatal(err)
			}
			verify, tamper := helperFor(t, m)
			if err := verify(); err != nil {
				t.Fatalf("verify: %v", err)
			}
			tamper()
			if err := verify(); err == nil {
				t.Fatal("tampered message verified")
			}
			checked++
		})
	}
	if checked < 15 {
		t.Errorf("only %d messages checked", checked)
	}
}

// helperFor returns the verification call for m and a function that changes one
// signed field.
func helperFor(t *testing.T, m Message) (verify func() error, tamper func()) {
	t.Helper()
	switch x := m.(type) {
	case *ValidatorAuthForMiner:
		return func() error { return x.VerifySignature() }, func() { x.Timestamp++ }
	case *V0InitialJobRequest:
		return func() error { return x.VerifyReceiptSignature() }, func() { x.JobStartedReceiptPayload.TTL++ }
	case *V0JobAcceptedReceiptRequest:
		return func() error { return x.VerifySignature() }, func() { x.Payload.TTL++ }
	case *V0JobFinishedReceiptRequest:
		return func() error { return x.VerifySignature() }, func() { x.Payload.ScoreStr = "9" + x.Payload.ScoreStr }
	case *V0StreamingJobReadyRequest:
		return func() error { return x.VerifyMinerSignature(loadVectors(t).Keys["bob"].SS58) },
			func() { x.Port++ }
	case *V0AuthenticationRequest:
		return func() error { return x.VerifySignature() }, func() {
			x.PublicKey = strings.TrimPrefix(loadVectors(t).Keys["bob"].PublicKeyHex, "0x")
		}
	case Receipt:
		p := &x
		return func() error {
				if err := p.VerifyValidatorSignature(); err != nil {
					return err
				}
				return p.VerifyMinerSignature()
			}, func() {
				switch pl := p.Payload.(type) {
				case JobStartedReceiptPayload:
					pl.IsOrganic = !pl.IsOrganic
					p.Payload = pl
				case JobAcceptedReceiptPayload:
					pl.TTL++
					p.Payload = pl
				case JobFinishedReceiptPayload:
					pl.BlockNumbers = append(pl.BlockNumbers, 1)
					p.Payload = pl
				}
			}
	case *V0DeclineJobRequest:
		return func() error {
				for _, rc := range x.Receipts {
					if err := rc.VerifyValidatorSignature(); err != nil {
						return err
					}
					if err := rc.VerifyMinerSignature(); err != nil {
						return err
					}
				}
				return nil
			}, func() {
				pl := x.Receipts[0].Payload.(JobStartedReceiptPayload)
				pl.JobUUID = "00000000-0000-4000-8000-000000000000"
				x.Receipts[0].Payload = pl
			}
	case *V2JobRequest:
		return func() error { return x.VerifySignature() }, func() { x.Args = append(x.Args, "--evil") }
	case *V0JobCheated:
		return func() error { return x.VerifySignature() }, func() { x.TrustedJobUUID = x.JobUUID }
	}
	t.Fatalf("no helper for %T", m)
	return nil, nil
}

// TestSignAndVerifyExtensions signs the extension receipt with a real key and
// verifies it through the helpers.
func TestSignAndVerifyExtensions(t *testing.T) {
	alice, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := keys.FromURI("//Bob")
	if err != nil {
		t.Fatal(err)
	}
	p := sampleWorkInterval(alice.SS58(), bob.SS58())
	req := V0WorkIntervalReceiptRequest{Payload: p, Signature: alice.Sign(p.BlobForSigning()).Hex()}
	data, err := Encode(req)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeValidatorToMiner(data)
	if err != nil {
		t.Fatal(err)
	}
	got := m.(*V0WorkIntervalReceiptRequest)
	if err := got.VerifySignature(); err != nil {
		t.Fatalf("verify: %v", err)
	}
	minerSig := bob.Sign(got.Payload.BlobForSigning()).Hex()
	rc := Receipt{Payload: got.Payload, ValidatorSignature: got.Signature, MinerSignature: &minerSig}
	line, err := Encode(rc)
	if err != nil {
		t.Fatal(err)
	}
	rc2, err := DecodeReceipt(line)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc2.VerifyValidatorSignature(); err != nil {
		t.Error(err)
	}
	if err := rc2.VerifyMinerSignature(); err != nil {
		t.Error(err)
	}
	got.Payload.WorkedSeconds++
	if err := got.VerifySignature(); !errors.Is(err, keys.ErrBadSignature) {
		t.Errorf("tampered receipt: %v", err)
	}
}
