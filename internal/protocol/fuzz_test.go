package protocol

import (
	"bytes"
	"testing"
)

var fuzzUnions = []Union{UnionValidatorToMiner, UnionMinerToValidator, UnionMinerToExecutor,
	UnionExecutorToMiner, UnionFacilitatorToValidator, UnionValidatorToFacilitator}

// FuzzDecode checks that no input panics a decoder and that whatever decodes
// re-encodes, and decodes again to the same encoding.
func FuzzDecode(f *testing.F) {
	vf := loadVectors(f)
	for _, v := range vf.Messages {
		f.Add([]byte(v.JSON))
		if v.DecodeFrom != nil {
			f.Add([]byte(*v.DecodeFrom))
		}
		if v.WireJSON != nil {
			f.Add([]byte(*v.WireJSON))
		}
	}
	for _, ex := range vf.FacilitatorEx {
		f.Add([]byte(ex.MessageJSON))
	}
	f.Add([]byte(okJobRequest))
	f.Add([]byte(`{"message_type":"V0JobFailedRequest","job_uuid":"j","context":{"a":[1,2.5e3,-0,"\u00e9\ud83d\ude00"]}}`))
	f.Add([]byte(`PING`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(name string, decode func([]byte) (Message, error)) {
			m, err := decode(data)
			if err != nil {
				return
			}
			enc, err := Encode(m)
			if err != nil {
				t.Fatalf("%s: decoded %T does not encode: %v\ninput: %q", name, m, err, data)
			}
			m2, err := decode(enc)
			if err != nil {
				t.Fatalf("%s: re-decode failed: %v\ninput: %q\nencoded: %s", name, err, data, enc)
			}
			enc2, err := Encode(m2)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Fatalf("%s: unstable encoding (%v)\n 1st: %s\n 2nd: %s", name, err, enc, enc2)
			}
		}
		for _, u := range fuzzUnions {
			check(u.String(), func(b []byte) (Message, error) { return Decode(u, b) })
		}
		check("Receipt", func(b []byte) (Message, error) { return DecodeReceipt(b) })
		check("Response", func(b []byte) (Message, error) { return DecodeResponse(b) })
	})
}
