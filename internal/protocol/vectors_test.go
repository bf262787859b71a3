package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The golden vectors live in shared/vectors/upstream_messages.json, outside the
// module (../shared relative to the module root). HORDE_VECTORS overrides the path.

type vectorFile struct {
	Messages      []vectorMessage           `json:"messages"`
	Enums         map[string]vectorEnum     `json:"enums"`
	SigningBlobs  []vectorBlob              `json:"signing_blobs"`
	Keys          map[string]vectorKey      `json:"keys"`
	Signatures    []vectorSignature         `json:"signatures"`
	FacilitatorEx map[string]facilitatorSig `json:"facilitator_signature_example"`
}

type vectorMessage struct {
	Channel     string            `json:"channel"`
	Unions      []string          `json:"unions"`
	MessageType *string           `json:"message_type"`
	Model       string            `json:"model"`
	JSON        string            `json:"json"`
	DecodeFrom  *string           `json:"decode_from"`
	WireJSON    *string           `json:"wire_json"`
	Embedded    []embeddedSigning `json:"embedded_signatures"`
	Note        string            `json:"note"`
}

type embeddedSigning struct {
	JSONPath   string `json:"json_path"`
	Encoding   string `json:"encoding"`
	BlobID     string `json:"blob_id"`
	FacExample string `json:"facilitator_signature_example"`
	SignerSS58 string `json:"signer_ss58"`
}

type vectorEnum struct {
	Values       []string `json:"values"`
	Unrecognised *string  `json:"unrecognised_value_decodes_to"`
}

type vectorBlob struct {
	ID          string  `json:"id"`
	SourceModel string  `json:"source_model"`
	SourceJSON  *string `json:"source_json"`
	Blob        *string `json:"blob"`
	BlobHex     string  `json:"blob_hex"`
}

type vectorKey struct {
	SS58         string `json:"ss58_address"`
	PublicKeyHex string `json:"public_key_hex"`
}

type vectorSignature struct {
	ID           string  `json:"id"`
	BlobID       *string `json:"blob_id"`
	SignerSS58   string  `json:"signer_ss58"`
	PublicKeyHex string  `json:"signer_public_key_hex"`
	MessageHex   string  `json:"message_hex"`
	Signature    string  `json:"signature"`
}

type facilitatorSig struct {
	SignedPayload      json.RawMessage `json:"signed_payload"`
	PayloadJSONEncoded string          `json:"payload_json_encoded"`
	TimestampNS        int64           `json:"timestamp_ns"`
	TimestampBE8Hex    string          `json:"timestamp_be8_hex"`
	Blake2bInputHex    string          `json:"blake2b_input_hex"`
	DigestHex          string          `json:"blake2b512_digest_hex"`
	SignerSS58         string          `json:"signer_ss58"`
	SignatureHex       string          `json:"signature_hex"`
	SignatureBase64    string          `json:"signature_base64"`
	MessageJSON        string          `json:"message_json"`
}

var (
	vectorsOnce sync.Once
	vectors     *vectorFile
	vectorsErr  error
)

func findVectors() (string, error) {
	if p := os.Getenv("HORDE_VECTORS"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		for _, rel := range []string{"shared/vectors", "../shared/vectors"} {
			p := filepath.Join(dir, rel, "upstream_messages.json")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("shared/vectors/upstream_messages.json not found in any parent of the " +
				"package directory (set HORDE_VECTORS to its path)")
		}
		dir = parent
	}
}

func loadVectors(t testing.TB) *vectorFile {
	t.Helper()
	vectorsOnce.Do(func() {
		p, err := findVectors()
		if err != nil {
			vectorsErr = err
			return
		}
		data, err := os.ReadFile(p)
		if err != nil {
			vectorsErr = err
			return
		}
		var v vectorFile
		if err := json.Unmarshal(data, &v); err != nil {
			vectorsErr = fmt.Errorf("parse %s: %w", p, err)
			return
		}
		vectors = &v
	})
	if vectorsErr != nil {
		t.Fatalf("golden vectors: %v", vectorsErr)
	}
	return vectors
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

var unionByName = map[string]Union{
	"ValidatorToMinerMessage": UnionValidatorToMiner,
	"MinerToValidatorMessage": UnionMinerToValidator,
	"MinerToExecutorMessage":  UnionMinerToExecutor,
	"ExecutorToMinerMessage":  UnionExecutorToMiner,
}

// vmUnions are the upstream unions that the vectors enumerate exhaustively.
var vmUnions = []string{"ValidatorToMinerMessage", "MinerToValidatorMessage", "MinerToExecutorMessage",
	"ExecutorToMinerMessage"}

// decodeVector decodes input through every decoder that must accept message v.
func decodeVector(t *testing.T, v vectorMessage, input string) map[string]Message {
	t.Helper()
	out := map[string]Message{}
	data := []byte(input)
	for _, name := range v.Unions {
		u, ok := unionByName[name]
		if !ok {
			t.Fatalf("unknown union %q in vectors", name)
		}
		m, err := Decode(u, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = m
	}
	if v.MessageType != nil {
		for _, name := range vmUnions {
			if slices.Contains(v.Unions, name) {
				continue
			}
			if _, err := Decode(unionByName[name], data); !errors.Is(err, ErrWrongUnion) {
				t.Errorf("%s accepted %s (err %v), want ErrWrongUnion", name, *v.MessageType, err)
			}
		}
	}
	switch {
	case v.Model == "Receipt":
		m, err := DecodeReceipt(data)
		if err != nil {
			t.Fatalf("DecodeReceipt: %v", err)
		}
		out["Receipt"] = m
	case v.Model == "Response":
		m, err := DecodeResponse(data)
		if err != nil {
			t.Fatalf("DecodeResponse: %v", err)
		}
		out["Response"] = m
		m2, err := DecodeFacilitatorToValidator(data)
		if err != nil {
			t.Fatalf("DecodeFacilitatorToValidator: %v", err)
		}
		out["FacilitatorToValidator"] = m2
	case v.Channel == "facilitator->validator":
		m, err := DecodeFacilitatorToValidator(data)
		if err != nil {
			t.Fatalf("DecodeFacilitatorToValidator: %v", err)
		}
		out["FacilitatorToValidator"] = m
		if _, err := DecodeValidatorToFacilitator(data); !errors.Is(err, ErrWrongUnion) {
			t.Errorf("ValidatorToFacilitator accepted it (err %v)", err)
		}
	case v.Channel == "validator->facilitator":
		m, err := DecodeValidatorToFacilitator(data)
		if err != nil {
			t.Fatalf("DecodeValidatorToFacilitator: %v", err)
		}
		out["ValidatorToFacilitator"] = m
		if _, err := DecodeFacilitatorToValidator(data); !errors.Is(err, ErrWrongUnion) {
			t.Errorf("FacilitatorToValidator accepted it (err %v)", err)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no decoder for model %s on %s", v.Model, v.Channel)
	}
	for name, m := range out {
		if v.MessageType != nil && m.MessageType() != *v.MessageType {
			t.Errorf("%s: MessageType() = %q, want %q", name, m.MessageType(), *v.MessageType)
		}
	}
	return out
}

func jsonValueEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func vectorName(i int, v vectorMessage) string {
	return strconv.Itoa(i) + "_" + v.Model
}

// TestVectorMessages decodes every vector through every decoder that accepts it,
// re-encodes and requires upstream's exact bytes.
func TestVectorMessages(t *testing.T) {
	vf := loadVectors(t)
	if len(vf.Messages) != 67 {
		t.Errorf("got %d vector messages, want 67", len(vf.Messages))
	}
	checkVectorMessages(t, vf)
}

// checkVectorMessages decodes every message of vf through every decoder that accepts it,
// re-encodes it and requires the vector's exact bytes.
func checkVectorMessages(t *testing.T, vf *vectorFile) {
	for i, v := range vf.Messages {
		t.Run(vectorName(i, v), func(t *testing.T) {
			inputs := map[string]string{"json": v.JSON}
			if v.DecodeFrom != nil {
				inputs = map[string]string{"decode_from": *v.DecodeFrom}
			}
			if v.WireJSON != nil {
				inputs["wire_json"] = *v.WireJSON
			}
			for kind, input := range inputs {
				for name, m := range decodeVector(t, v, input) {
					got, err := Encode(m)
					if err != nil {
						t.Fatalf("%s via %s: Encode: %v", kind, name, err)
					}
					if !bytes.Equal(got, []byte(v.JSON)) {
						if strings.Contains(v.Note, "float") && jsonValueEqual(got, []byte(v.JSON)) {
							t.Logf("%s via %s: equal as JSON values only", kind, name)
							continue
						}
						t.Errorf("%s via %s: re-encoding differs\n got: %s\nwant: %s", kind, name, got, v.JSON)
					}
					// A value (not only a pointer) encodes the same way.
					rv := reflect.ValueOf(m)
					if rv.Kind() == reflect.Pointer {
						got2, err := Encode(rv.Elem().Interface().(Message))
						if err != nil || !bytes.Equal(got2, got) {
							t.Errorf("%s via %s: encoding the value differs: %v", kind, name, err)
						}
					}
					// encoding/json integration: Marshal/Unmarshal agree (modulo HTML escaping).
					if j, err := json.Marshal(m); err != nil || !jsonValueEqual(j, got) {
						t.Errorf("%s via %s: json.Marshal = %s, %v", kind, name, j, err)
					}
				}
			}
		})
	}
}

// messageBlob returns the bytes (or digest) the signature at path signs, built
// from the decoded Go message.
func messageBlob(m Message, path string) ([]byte, error) {
	switch x := m.(type) {
	case *ValidatorAuthForMiner:
		return x.BlobForSigning(), nil
	case *V0InitialJobRequest:
		return x.BlobForSigning(), nil
	case *V0JobAcceptedReceiptRequest:
		return x.BlobForSigning(), nil
	case *V0WorkIntervalReceiptRequest:
		return x.BlobForSigning(), nil
	case *V0JobFinishedReceiptRequest:
		return x.BlobForSigning(), nil
	case *V0StreamingJobReadyRequest:
		return x.BlobForSigning(), nil
	case *V0AuthenticationRequest:
		return x.BlobForSigning()
	case Receipt:
		return x.Payload.BlobForSigning(), nil
	case *V0DeclineJobRequest:
		var i int
		if _, err := fmt.Sscanf(path, "receipts[%d]", &i); err != nil || i >= len(x.Receipts) {
			return nil, fmt.Errorf("bad path %q", path)
		}
		return x.Receipts[i].Payload.BlobForSigning(), nil
	case *V2JobRequest:
		d, err := x.SignedPayloadDigest()
		return d[:], err
	case *V0JobCheated:
		d, err := x.SignedPayloadDigest()
		return d[:], err
	}
	return nil, fmt.Errorf("no blob for %T", m)
}

// jsonPath extracts a string at a path like "receipts[0].miner_signature".
func jsonPath(doc string, path string) (string, error) {
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		return "", err
	}
	for _, part := range strings.Split(path, ".") {
		name, idx, hasIdx := strings.Cut(part, "[")
		obj, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("%s: not an object", part)
		}
		v = obj[name]
		if hasIdx {
			i, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			arr, ok := v.([]any)
			if err != nil || !ok || i >= len(arr) {
				return "", fmt.Errorf("%s: bad index", part)
			}
			v = arr[i]
		}
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: not a string", path)
	}
	return s, nil
}

// signedMessage is one signature found in the vectors with the bytes it signs,
// rebuilt by this package.
type signedMessage struct {
	name      string
	signer    string
	message   []byte
	signature string // "0x"-hex
}

func blobByID(t testing.TB, vf *vectorFile, id string) []byte {
	t.Helper()
	for _, b := range vf.SigningBlobs {
		if b.ID == id {
			return mustHex(t, b.BlobHex)
		}
	}
	t.Fatalf("no signing blob %q", id)
	return nil
}

// embeddedSignatures rebuilds, from the decoded messages, the signed bytes of
// every embedded signature, checks them against the vectors' blobs/digests and
// returns them for verification.
func embeddedSignatures(t *testing.T, vf *vectorFile) []signedMessage {
	t.Helper()
	var out []signedMessage
	for i, v := range vf.Messages {
		for _, es := range v.Embedded {
			name := vectorName(i, v) + "/" + es.JSONPath
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
				t.Fatalf("%s: %v", name, err)
			}
			got, err := messageBlob(m, es.JSONPath)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var want []byte
			if es.BlobID != "" {
				want = blobByID(t, vf, es.BlobID)
			} else {
				want = mustHex(t, vf.FacilitatorEx[es.FacExample].DigestHex)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: signed bytes differ\n got: %q\nwant: %q", name, got, want)
			}
			sig, err := jsonPath(v.JSON, es.JSONPath)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if es.Encoding == "base64" {
				s := m.(interface{ sigBytes() []byte }).sigBytes()
				sig = "0x" + hex.EncodeToString(s)
			}
			out = append(out, signedMessage{name, es.SignerSS58, got, sig})
		}
	}
	return out
}

func (m *V2JobRequest) sigBytes() []byte { return m.Signature.Signature }
func (m *V0JobCheated) sigBytes() []byte { return m.Signature.Signature }

func TestVectorEmbeddedSignatureBlobs(t *testing.T) {
	vf := loadVectors(t)
	sigs := embeddedSignatures(t, vf)
	if len(sigs) < 20 {
		t.Errorf("only %d embedded signatures found", len(sigs))
	}
}

// TestVectorSigningBlobs rebuilds every signing blob from its source JSON.
func TestVectorSigningBlobs(t *testing.T) {
	vf := loadVectors(t)
	for _, b := range vf.SigningBlobs {
		t.Run(b.ID, func(t *testing.T) {
			want := mustHex(t, b.BlobHex)
			if b.Blob != nil && *b.Blob != string(want) {
				t.Fatalf("vector inconsistent: blob != blob_hex")
			}
			var got []byte
			var err error
			if b.SourceJSON == nil {
				if b.SourceModel != "V0AuthenticationRequest" {
					t.Fatalf("no source for %s", b.SourceModel)
				}
				msg := V0AuthenticationRequest{PublicKey: strings.TrimPrefix(vf.Keys["alice"].PublicKeyHex, "0x")}
				got, err = msg.BlobForSigning()
			} else {
				src := []byte(*b.SourceJSON)
				switch b.SourceModel {
				case "JobStartedReceiptPayload":
					var p JobStartedReceiptPayload
					err = json.Unmarshal(src, &p)
					got = p.BlobForSigning()
				case "JobAcceptedReceiptPayload":
					var p JobAcceptedReceiptPayload
					err = json.Unmarshal(src, &p)
					got = p.BlobForSigning()
				case "JobFinishedReceiptPayload":
					var p JobFinishedReceiptPayload
					err = json.Unmarshal(src, &p)
					got = p.BlobForSigning()
				case "ValidatorAuthForMiner":
					var p ValidatorAuthForMiner
					err = json.Unmarshal(src, &p)
					got = p.BlobForSigning()
				case "V0StreamingJobReadyRequest":
					var p V0StreamingJobReadyRequest
					err = json.Unmarshal(src, &p)
					got = p.BlobForSigning()
				default:
					t.Fatalf("unhandled source model %s", b.SourceModel)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("blob differs\n got: %q\nwant: %q", got, want)
			}
		})
	}
	// The receipt blobs are also reachable through the generic payload decoder.
	for _, b := range vf.SigningBlobs {
		if !strings.HasPrefix(b.ID, "receipt.") {
			continue
		}
		line := `{"payload":` + *b.SourceJSON + `,"validator_signature":"0x00","miner_signature":null}`
		rc, err := DecodeReceipt([]byte(line))
		if err != nil {
			t.Fatalf("%s: %v", b.ID, err)
		}
		if got := rc.Payload.BlobForSigning(); !bytes.Equal(got, mustHex(t, b.BlobHex)) {
			t.Errorf("%s via DecodeReceipt: blob differs", b.ID)
		}
	}
}

// TestVectorFacilitatorSignatures rebuilds the compute_horde_core signature
// payloads and digests byte for byte.
func TestVectorFacilitatorSignatures(t *testing.T) {
	vf := loadVectors(t)
	for name, ex := range vf.FacilitatorEx {
		t.Run(name, func(t *testing.T) {
			m, err := DecodeFacilitatorToValidator([]byte(ex.MessageJSON))
			if err != nil {
				t.Fatal(err)
			}
			var payload []byte
			var digest [64]byte
			var sig *Signature
			switch x := m.(type) {
			case *V2JobRequest:
				var inner string
				if err := json.Unmarshal(ex.SignedPayload, &inner); err != nil {
					t.Fatalf("signed_payload: %v", err)
				}
				sf, err := x.SignedFieldsJSON()
				if err != nil {
					t.Fatal(err)
				}
				if string(sf) != inner {
					t.Errorf("SignedFieldsJSON differs\n got: %s\nwant: %s", sf, inner)
				}
				if payload, err = x.SignedPayload(); err != nil {
					t.Fatal(err)
				}
				if digest, err = x.SignedPayloadDigest(); err != nil {
					t.Fatal(err)
				}
				sig = x.Signature
			case *V0JobCheated:
				if payload, err = x.SignedPayload(); err != nil {
					t.Fatal(err)
				}
				if digest, err = x.SignedPayloadDigest(); err != nil {
					t.Fatal(err)
				}
				sig = x.Signature
			default:
				t.Fatalf("unexpected %T", m)
			}
			if string(payload) != ex.PayloadJSONEncoded {
				t.Errorf("payload differs\n got: %s\nwant: %s", payload, ex.PayloadJSONEncoded)
			}
			if sig.TimestampNS != ex.TimestampNS {
				t.Errorf("timestamp_ns %d, want %d", sig.TimestampNS, ex.TimestampNS)
			}
			input := append(mustHex(t, ex.TimestampBE8Hex), payload...)
			if !bytes.Equal(input, mustHex(t, ex.Blake2bInputHex)) {
				t.Errorf("blake2b input differs")
			}
			if !bytes.Equal(digest[:], mustHex(t, ex.DigestHex)) {
				t.Errorf("digest %x, want %s", digest, ex.DigestHex)
			}
			if d := SignatureDigest(ex.TimestampNS, payload); d != digest {
				t.Errorf("SignatureDigest disagrees")
			}
			if !bytes.Equal(sig.Signature, mustHex(t, ex.SignatureHex)) {
				t.Errorf("signature bytes differ from signature_hex")
			}
			if got, _ := Encode(m); string(got) != ex.MessageJSON {
				t.Errorf("message re-encoding differs")
			}
		})
	}
}

type enumCase struct {
	values   []string
	extended []string // horde extensions appended after upstream's values
	parse    func(string) (string, error)
}

func enumCases() map[string]enumCase {
	str := func(vs any) []string {
		var out []string
		rv := reflect.ValueOf(vs)
		for i := 0; i < rv.Len(); i++ {
			out = append(out, rv.Index(i).String())
		}
		return out
	}
	p := func(f func(string) (string, error)) func(string) (string, error) { return f }
	return map[string]enumCase{
		"ExecutorClass": {str(ExecutorClassValues()), nil, p(func(s string) (string, error) {
			v, err := ParseExecutorClass(s)
			return string(v), err
		})},
		"JobRejectionReason": {str(JobRejectionReasonValues()), []string{"class_not_offered"},
			p(func(s string) (string, error) { return string(ParseJobRejectionReason(s)), nil })},
		"JobFailureReason": {str(JobFailureReasonValues()), nil,
			p(func(s string) (string, error) { return string(ParseJobFailureReason(s)), nil })},
		"HordeFailureReason": {str(HordeFailureReasonValues()), nil,
			p(func(s string) (string, error) { return string(ParseHordeFailureReason(s)), nil })},
		"JobStage": {str(JobStageValues()), nil,
			p(func(s string) (string, error) { return string(ParseJobStage(s)), nil })},
		"JobParticipantType": {str(JobParticipantTypeValues()), nil,
			p(func(s string) (string, error) { return string(ParseJobParticipantType(s)), nil })},
		"JobStatus": {str(JobStatusValues()), nil,
			p(func(s string) (string, error) { return string(ParseJobStatus(s)), nil })},
		"UnauthorizedError.Code": {str(UnauthorizedErrorCodeValues()), nil, p(func(s string) (string, error) {
			v, err := unauthorizedErrorCodeEnum.parse(s)
			return string(v), err
		})},
		"VolumeType": {str(VolumeTypeValues()), nil, p(func(s string) (string, error) {
			v, err := volumeTypeEnum.parse(s)
			return string(v), err
		})},
		"OutputUploadType": {str(OutputUploadTypeValues()), nil, p(func(s string) (string, error) {
			v, err := outputUploadTypeEnum.parse(s)
			return string(v), err
		})},
		"ReceiptType": {str(ReceiptTypeValues()), []string{"WorkInterval"}, p(func(s string) (string, error) {
			v, err := receiptTypeEnum.parse(s)
			return string(v), err
		})},
		"SignatureScope": {str(SignatureScopeValues()), nil, p(func(s string) (string, error) {
			v, err := signatureScopeEnum.parse(s)
			return string(v), err
		})},
		"DockerRunOptionsPreset": {str(DockerRunOptionsPresetValues()), nil, p(func(s string) (string, error) {
			v, err := dockerRunOptionsPresetEnum.parse(s)
			return string(v), err
		})},
		"Response.status": {str(ResponseStatusValues()), nil, p(func(s string) (string, error) {
			v, err := responseStatusEnum.parse(s)
			return string(v), err
		})},
	}
}

func TestVectorEnums(t *testing.T) {
	vf := loadVectors(t)
	cases := enumCases()
	if len(cases) != len(vf.Enums) {
		t.Errorf("vectors have %d enums, tests cover %d", len(vf.Enums), len(cases))
	}
	for name, ve := range vf.Enums {
		t.Run(name, func(t *testing.T) {
			c, ok := cases[name]
			if !ok {
				t.Fatalf("enum %s not covered", name)
			}
			want := append(slices.Clone(ve.Values), c.extended...)
			if !slices.Equal(c.values, want) {
				t.Errorf("values %q, want %q (upstream order, then extensions)", c.values, want)
			}
			for _, v := range c.values {
				if got, err := c.parse(v); err != nil || got != v {
					t.Errorf("parse(%q) = %q, %v", v, got, err)
				}
			}
			got, err := c.parse("surely_not_a_value")
			if ve.Unrecognised == nil {
				if !errors.Is(err, ErrUnknownEnumValue) || !strings.Contains(err.Error(), "surely_not_a_value") {
					t.Errorf("unknown value: got %q, %v; want an error naming it", got, err)
				}
			} else if err != nil || got != *ve.Unrecognised {
				t.Errorf("unknown value decodes to %q, %v; want %q", got, err, *ve.Unrecognised)
			}
		})
	}
}
