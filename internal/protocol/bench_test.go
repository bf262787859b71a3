package protocol

import (
	"strings"
	"testing"
)

// fullestJobRequest returns the largest V0JobRequest vector (multi_volume + multi_upload).
func fullestJobRequest(b testing.TB) []byte {
	vf := loadVectors(b)
	var best string
	for _, v := range vf.Messages {
		if v.Model == "V0JobRequest" && strings.Contains(v.JSON, `"multi_volume"`) &&
			strings.Contains(v.JSON, `"multi_upload"`) && len(v.JSON) > len(best) {
			best = v.JSON
		}
	}
	if best == "" {
		b.Fatal("no V0JobRequest vector with multi_volume and multi_upload")
	}
	return []byte(best)
}

// TestDecodeAllocs holds decoding to its allocations: one per list, map and nested model,
// none per list element (a model decoded into a local through a function value, or a
// method value passed down, costs one more each time; one such change went unnoticed).
func TestDecodeAllocs(t *testing.T) {
	data := fullestJobRequest(t)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeValidatorToMiner(data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 28 {
		t.Errorf("decoding the fullest V0JobRequest takes %v allocations, want at most 28", allocs)
	}
}

func BenchmarkDecodeJobRequest(b *testing.B) {
	data := fullestJobRequest(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeValidatorToMiner(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeJobRequest(b *testing.B) {
	data := fullestJobRequest(b)
	m, err := DecodeValidatorToMiner(data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEncodeJobRequest(b *testing.B) {
	data := fullestJobRequest(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := DecodeValidatorToMiner(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReceiptBlob(b *testing.B) {
	vf := loadVectors(b)
	var rc Receipt
	for _, v := range vf.Messages {
		if v.Model == "Receipt" {
			var err error
			if rc, err = DecodeReceipt([]byte(v.JSON)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = rc.Payload.BlobForSigning()
	}
}
