package keys

import (
	"encoding/hex"
	"testing"

	schnorrkel "github.com/ChainSafe/go-schnorrkel"
)

// benchMsg is a receipt-sized blob, like what validators and miners sign.
var benchMsg = []byte(`{"executor_class": "spin_up-4min.gpu-24gb", "is_organic": true, "job_uuid": "7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94", ` +
	`"miner_hotkey": "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty", "receipt_type": "JobStartedReceipt", ` +
	`"timestamp": "2026-01-21T13:18:47Z", "ttl": 90, "validator_hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"}`)

var sinkSig Signature

func BenchmarkSign(b *testing.B) {
	kp := mustURI(b, "//Alice")
	for b.Loop() {
		sinkSig = kp.Sign(benchMsg)
	}
}

func BenchmarkVerify(b *testing.B) {
	kp := mustURI(b, "//Alice")
	pub, sig := kp.Public(), kp.Sign(benchMsg)
	for b.Loop() {
		if !pub.Verify(benchMsg, sig) {
			b.Fatal("verify failed")
		}
	}
}

// BenchmarkVerifyString is the wire path: parse the SS58 address and the hex signature, then
// verify.
func BenchmarkVerifyString(b *testing.B) {
	kp := mustURI(b, "//Alice")
	sig := kp.Sign(benchMsg).Hex()
	for b.Loop() {
		if err := Verify(aliceSS58, benchMsg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func bareKeys(b *testing.B) (*schnorrkel.SecretKey, *schnorrkel.PublicKey) {
	raw, _ := hex.DecodeString(aliceSeed)
	var seed [32]byte
	copy(seed[:], raw)
	msk, err := schnorrkel.NewMiniSecretKeyFromRaw(seed)
	if err != nil {
		b.Fatal(err)
	}
	return msk.ExpandEd25519(), msk.Public()
}

// BenchmarkSchnorrkelSignBare is go-schnorrkel alone, for comparison with BenchmarkSign.
func BenchmarkSchnorrkelSignBare(b *testing.B) {
	sk, _ := bareKeys(b)
	ctx := []byte("substrate")
	for b.Loop() {
		if _, err := sk.Sign(schnorrkel.NewSigningContext(ctx, benchMsg)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSchnorrkelVerifyBare is go-schnorrkel alone with the key and signature already
// decoded, for comparison with BenchmarkVerify.
func BenchmarkSchnorrkelVerifyBare(b *testing.B) {
	sk, pk := bareKeys(b)
	ctx := []byte("substrate")
	sig, err := sk.Sign(schnorrkel.NewSigningContext(ctx, benchMsg))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ok, err := pk.Verify(sig, schnorrkel.NewSigningContext(ctx, benchMsg))
		if err != nil || !ok {
			b.Fatal("verify failed")
		}
	}
}
