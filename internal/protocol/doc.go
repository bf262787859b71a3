// Package protocol implements the wire messages of ComputeHorde's three websocket
// channels (facilitator↔validator, validator↔miner, miner↔executor), the receipts
// that miners and validators exchange, and the canonical bytes that get signed.
//
// Compatibility with upstream ComputeHorde is byte-exact: [Encode] reproduces what
// upstream's pydantic models emit with model_dump_json() (compact JSON, fields in
// declaration order, every optional field written as null, non-ASCII as raw UTF-8,
// no HTML escaping), and the signing blobs reproduce upstream's f-strings and
// Python json.dumps(..., sort_keys=True) output. The golden vectors in
// shared/vectors/upstream_messages.json are the ground truth and are checked by the
// package tests.
//
// Each wire model is declared once, as a Go struct with a //wire: directive and field tags
// (package codegen documents them); `go generate` writes its decoder, encoder, JSON methods
// and registry entry into codec_gen.go, and a test fails if that file is out of date.
//
// Decoding is strict and never panics. Frames larger than the limit are rejected
// before parsing; the message_type discriminator selects the model, and only the
// models of the requested union (channel direction) are accepted; wrong JSON types,
// missing required fields, duplicate keys and unknown values of strict enums are
// errors that name the offending field. Following upstream, the forward-compatible
// enums ([JobStatus], [JobStage], [HordeFailureReason], [JobFailureReason],
// [JobRejectionReason], [JobParticipantType]) decode unknown strings to "unknown";
// unknown object keys are dropped, kept (models with extra="allow") or rejected
// (models with extra="forbid") per model, as upstream does. Decoding errors are
// *[DecodeError] values wrapping one of the Err* sentinels. Decoded messages are
// pointers (*V0JobRequest, ...); [Encode] accepts pointers and values alike.
//
// Signature helpers (VerifySignature and friends) check signatures with
// internal/keys; deciding whether the signer is acceptable stays with the caller.
//
// Free-form JSON (failure contexts, machine specs, cheat-report details, extra keys)
// is held as json.RawMessage in the canonical form pydantic would re-emit, so a
// decoded message re-encodes to the same bytes.
//
// # Extensions
//
// horde adds a few messages and values in upstream's style; an upstream peer fails
// to parse them and ignores them (it answers a GenericError and keeps the socket
// open):
//   - [V0WorkIntervalReceiptRequest] (validator → miner) with its
//     [WorkIntervalReceiptPayload] (receipt_type "WorkInterval"), a receipt per
//     10-minute interval of work, signed like upstream's receipts;
//   - [V0ClassValuesMessage] (validator → miner): per-class values and the reward
//     rate, so a miner can decide which classes are profitable;
//   - the decline reason [JobRejectionReasonClassNotOffered], which upstream peers
//     read as "unknown".
package protocol

//go:generate go run ./codegen/protogen
