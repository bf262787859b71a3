package protocol

import (
	"encoding/base64"
	"encoding/binary"

	"golang.org/x/crypto/blake2b"
)

// Signature is compute_horde_core's signature object, used for facilitator job
// requests (scope SignedFields) and cheat reports (scope FullRequest). The
// sr25519 signature (Signature, raw bytes; base64 on the wire) is over the
// 64-byte digest SignatureDigest(TimestampNS, payload).
//
//wire:model forbid
type Signature struct {
	SignatureType  string         `wire:"signature_type,optional"` // "bittensor"
	Signatory      string         `wire:"signatory,optional"`      // SS58 address of the signer
	TimestampNS    int64          `wire:"timestamp_ns,optional"`   // unix nanoseconds
	Signature      []byte         `wire:"signature,via=Base64"`
	SignatureScope SignatureScope `wire:"signature_scope,default=SignedFields"`
}

func decodeBase64(r *reader, dst *[]byte) error {
	s, err := r.readString()
	if err != nil {
		return err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return &DecodeError{Msg: "invalid base64", Err: ErrInvalidValue}
	}
	*dst = b
	return nil
}

func encodeBase64(e *encoder, b []byte) {
	e.byte1('"')
	e.b = base64.StdEncoding.AppendEncode(e.b, b)
	e.byte1('"')
}

// SignatureDigest returns blake2b-512(8-byte big-endian timestampNS || payload),
// the message compute_horde_core signatures sign.
func SignatureDigest(timestampNS int64, payload []byte) [64]byte {
	h, _ := blake2b.New512(nil)
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(timestampNS))
	h.Write(ts[:])
	h.Write(payload)
	var out [64]byte
	h.Sum(out[:0])
	return out
}

// SignedFieldsJSON returns upstream's SignedFields.model_dump_json() for this
// request: compact JSON of executor_class, docker_image, args, env, use_gpu,
// artifacts_dir (null → ""), on_trusted_miner, the four time limits,
// streaming_details, volumes (a multi_volume's members, [volume] or []) and
// uploads (a multi_upload's uploads — its system_output is not signed — [upload]
// or []). Env keeps its wire order.
func (m *V2JobRequest) SignedFieldsJSON() ([]byte, error) {
	e := encoder{b: make([]byte, 0, 1024)}
	e.raw(`{"executor_class":`)
	e.str(string(m.ExecutorClass)) // a str in SignedFields
	e.raw(`,"docker_image":`)
	e.str(m.DockerImage)
	e.raw(`,"args":`)
	e.strList(m.Args)
	e.raw(`,"env":`)
	encodeOrderedMap(&e, m.Env, encStringValue)
	e.raw(`,"use_gpu":`)
	e.boolean(m.UseGPU)
	e.raw(`,"artifacts_dir":`)
	if m.ArtifactsDir == nil {
		e.raw(`""`)
	} else {
		e.str(*m.ArtifactsDir)
	}
	e.raw(`,"on_trusted_miner":`)
	e.boolean(m.OnTrustedMiner)
	e.raw(`,"download_time_limit":`)
	e.int(m.DownloadTimeLimit)
	e.raw(`,"execution_time_limit":`)
	e.int(m.ExecutionTimeLimit)
	e.raw(`,"upload_time_limit":`)
	e.int(m.UploadTimeLimit)
	e.raw(`,"streaming_start_time_limit":`)
	e.int(m.StreamingStartTimeLimit)
	e.raw(`,"streaming_details":`)
	encodeOpt(&e, m.StreamingDetails)
	e.raw(`,"volumes":`)
	var volumes []Volume
	if m.Volume != nil {
		volumes = m.Volume.Flatten()
	}
	encodeNestedVolumes(&e, volumes)
	e.raw(`,"uploads":`)
	var uploads []OutputUpload
	if u := m.OutputUpload; u != nil {
		uploads = []OutputUpload{*u}
		if u.Multi != nil {
			uploads = u.Multi.Uploads
		}
	}
	encodeMembers(&e, uploads, OutputUpload.encodeAllowed, "output_upload", (uploadZip | uploadSingle).check)
	e.byte1('}')
	if e.err != nil {
		return nil, e.err
	}
	return e.b, nil
}

// SignedPayload returns the bytes hashed for a SignedFields signature: the
// SignedFieldsJSON text json.dumps'd again as a Python string literal (quoted,
// ASCII-escaped) — upstream's double encoding.
func (m *V2JobRequest) SignedPayload() ([]byte, error) {
	inner, err := m.SignedFieldsJSON()
	if err != nil {
		return nil, err
	}
	return appendPyString(make([]byte, 0, len(inner)+len(inner)/4+2), string(inner)), nil
}

// SignedPayloadDigest returns the 64-byte digest the request's Signature signs.
func (m *V2JobRequest) SignedPayloadDigest() ([64]byte, error) {
	return signedDigest("V2JobRequest", m.Signature, m.SignedPayload)
}

// signedDigest is the digest sig signs over what payload returns.
func signedDigest(model string, sig *Signature, payload func() ([]byte, error)) ([64]byte, error) {
	if sig == nil {
		return [64]byte{}, newErr(ErrMissingField, model+" has no signature")
	}
	if sig.TimestampNS < 0 {
		return [64]byte{}, newErr(ErrInvalidValue, model+" signature has a negative timestamp_ns")
	}
	p, err := payload()
	if err != nil {
		return [64]byte{}, err
	}
	return SignatureDigest(sig.TimestampNS, p), nil
}

// SignedPayload returns the bytes hashed for the cheat report's FullRequest
// signature: json.dumps({"job_uuid", "trusted_job_uuid", "details"},
// sort_keys=True), encoded once (the form upstream's validator verifies).
func (m *V0JobCheated) SignedPayload() ([]byte, error) {
	return pyDumps(nil, pyDict{
		{"job_uuid", m.JobUUID},
		{"trusted_job_uuid", m.TrustedJobUUID},
		{"details", m.Details},
	})
}

// SignedPayloadDigest returns the 64-byte digest the report's Signature signs.
func (m *V0JobCheated) SignedPayloadDigest() ([64]byte, error) {
	return signedDigest("V0JobCheated", m.Signature, m.SignedPayload)
}
