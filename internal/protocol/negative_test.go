package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const okJobRequest = `{"message_type":"V0JobRequest","job_uuid":"7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94",` +
	`"executor_class":"spin_up-4min.gpu-24gb","docker_image":"img","raw_script":null,` +
	`"docker_run_options_preset":"nvidia_all","docker_run_cmd":[],"env":{},"volume":null,` +
	`"output_upload":null,"artifacts_dir":null}`

func TestDecodeErrors(t *testing.T) {
	if _, err := DecodeValidatorToMiner([]byte(okJobRequest)); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	sub := func(old, new string) string {
		if !strings.Contains(okJobRequest, old) {
			panic(old)
		}
		return strings.Replace(okJobRequest, old, new, 1)
	}
	type tc struct {
		name  string
		union Union
		frame string
		kind  error
		text  []string // substrings the error message must contain
	}
	cases := []tc{
		{"oversized frame", UnionValidatorToMiner, okJobRequest + strings.Repeat(" ", MaxFrameSize),
			ErrFrameTooLarge, []string{"exceeds the limit"}},
		{"not JSON", UnionValidatorToMiner, "PING", ErrSyntax, []string{"invalid JSON"}},
		{"truncated", UnionValidatorToMiner, okJobRequest[:40], ErrSyntax, []string{"invalid JSON"}},
		{"trailing data", UnionValidatorToMiner, okJobRequest + "x", ErrSyntax, []string{"after JSON value"}},
		{"JSON array", UnionValidatorToMiner, `[1,2]`, ErrNotObject, []string{"got array"}},
		{"JSON string", UnionValidatorToMiner, `"V0JobRequest"`, ErrNotObject, []string{"got string"}},
		{"missing message_type", UnionValidatorToMiner, `{"job_uuid":"x"}`, ErrMissingMessageType,
			[]string{"message_type"}},
		{"message_type not a string", UnionValidatorToMiner, `{"message_type":1}`, ErrWrongType,
			[]string{`"message_type"`, "expected string, got number"}},
		{"unknown message_type", UnionValidatorToMiner, sub(`"V0JobRequest"`, `"V9FooRequest"`),
			ErrUnknownMessageType, []string{`"V9FooRequest"`}},
		{"wrong union", UnionExecutorToMiner, okJobRequest, ErrWrongUnion,
			[]string{`"V0JobRequest"`, "ExecutorToMinerMessage"}},
		{"wrong union (fv)", UnionValidatorToFacilitator, `{"message_type":"V0JobCheated"}`, ErrWrongUnion, []string{"V0JobCheated"}},
		{"wrong field type", UnionValidatorToMiner, sub(`"docker_image":"img"`, `"docker_image":42`),
			ErrWrongType, []string{`"docker_image"`, "expected string, got number"}},
		{"wrong nested type", UnionValidatorToMiner, sub(`"docker_run_cmd":[]`, `"docker_run_cmd":["a",1]`),
			ErrWrongType, []string{`"docker_run_cmd[1]"`}},
		{"wrong map value type", UnionValidatorToMiner, sub(`"env":{}`, `"env":{"A":1}`),
			ErrWrongType, []string{`"env.A"`}},
		{"float for int", UnionExecutorToMiner,
			`{"message_type":"V0StreamingJobReadyRequest","job_uuid":"j","public_key":"k","port":1.5}`,
			ErrWrongType, []string{`"port"`, "expected integer"}},
		{"int overflow", UnionExecutorToMiner,
			`{"message_type":"V0StreamingJobReadyRequest","job_uuid":"j","public_key":"k","port":99999999999999999999}`,
			ErrWrongType, []string{`"port"`, "out of range"}},
		{"null for required", UnionValidatorToMiner, sub(`"docker_image":"img"`, `"docker_image":null`),
			ErrWrongType, []string{`"docker_image"`, "got null"}},
		{"missing required field", UnionValidatorToMiner, sub(`"docker_image":"img",`, ``),
			ErrMissingField, []string{`"docker_image"`, "missing required field"}},
		{"missing nested field", UnionValidatorToMiner,
			sub(`"volume":null`, `"volume":{"volume_type":"single_file","url":"u"}`),
			ErrMissingField, []string{`"volume.relative_path"`}},
		{"missing discriminator", UnionValidatorToMiner, sub(`"volume":null`, `"volume":{"url":"u"}`),
			ErrMissingField, []string{`"volume.volume_type"`}},
		{"empty job_uuid", UnionValidatorToMiner, sub(`"7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94"`, `""`),
			ErrInvalidValue, []string{`"job_uuid"`, "empty"}},
		{"unknown strict enum", UnionValidatorToMiner, sub(`"spin_up-4min.gpu-24gb"`, `"gpu.h100"`),
			ErrUnknownEnumValue, []string{`"executor_class"`, `"gpu.h100"`}},
		{"unknown preset", UnionValidatorToMiner, sub(`"nvidia_all"`, `"all_gpus"`),
			ErrUnknownEnumValue, []string{`"docker_run_options_preset"`, `"all_gpus"`}},
		{"unknown volume type", UnionValidatorToMiner, sub(`"volume":null`, `"volume":{"volume_type":"nfs"}`),
			ErrUnknownEnumValue, []string{`"volume.volume_type"`, `"nfs"`}},
		{"nested multi_volume", UnionValidatorToMiner, sub(`"volume":null`,
			`"volume":{"volume_type":"multi_volume","volumes":[{"volume_type":"multi_volume","volumes":[]}]}`),
			ErrUnknownEnumValue, []string{`"volume.volumes[0].volume_type"`}},
		{"zip upload inside multi_upload", UnionValidatorToMiner, sub(`"output_upload":null`,
			`"output_upload":{"output_upload_type":"multi_upload","uploads":[{"output_upload_type":"zip_and_http_put","url":"u"}]}`),
			ErrUnknownEnumValue, []string{`"output_upload.uploads[0].output_upload_type"`}},
		{"nested multi_upload", UnionValidatorToMiner, sub(`"output_upload":null`,
			`"output_upload":{"output_upload_type":"multi_upload","uploads":[{"output_upload_type":"multi_upload","uploads":[]}]}`),
			ErrUnknownEnumValue, []string{`"output_upload.uploads[0].output_upload_type"`, `"multi_upload" not allowed here`}},
		{"unknown receipt type", UnionMinerToValidator, `{"message_type":"V0DeclineJobRequest","job_uuid":"j",` +
			`"receipts":[{"payload":{"receipt_type":"Foo"},"validator_signature":"0x"}]}`,
			ErrUnknownEnumValue, []string{`"receipts[0].payload.receipt_type"`, `"Foo"`}},
		{"unknown unauthorized code", UnionMinerToValidator, `{"message_type":"UnauthorizedError","code":"NOPE"}`,
			ErrUnknownEnumValue, []string{`"code"`, `"NOPE"`}},
		{"literal mismatch", UnionFacilitatorToValidator, `{"type":"job.old","message_type":"V0JobCheated"}`,
			ErrUnknownEnumValue, []string{`"type"`, `"job.cheated"`}},
		{"duplicate map key", UnionValidatorToMiner, sub(`"env":{}`, `"env":{"A":"1","A":"2"}`),
			ErrDuplicateKey, []string{`"env`, `duplicate key "A"`}},
		{"duplicate field", UnionValidatorToMiner, sub(`"docker_image":"img"`, `"docker_image":"img","docker_image":"x"`),
			ErrDuplicateKey, []string{`"docker_image"`}},
		{"duplicate key in free-form JSON", UnionExecutorToMiner,
			`{"message_type":"V0HordeFailedRequest","job_uuid":"j","reported_by":"miner","message":"","reason":"x",` +
				`"context":{"a":{"b":1,"b":2}}}`, ErrDuplicateKey, []string{`"context.a`}},
		{"context not an object", UnionExecutorToMiner,
			`{"message_type":"V0HordeFailedRequest","job_uuid":"j","reported_by":"miner","message":"","reason":"x","context":[1]}`,
			ErrWrongType, []string{`"context"`, "expected object, got array"}},
		{"extra key on forbid model", UnionValidatorToFacilitator,
			`{"message_type":"V0JobStatusUpdate","uuid":"u","status":"sent","priority":1}`,
			ErrUnknownField, []string{`"priority"`, "forbids extra fields"}},
		{"extra key on V2JobRequest signature", UnionFacilitatorToValidator,
			`{"message_type":"V2JobRequest","signature":{"signature":"","alg":"x"}}`,
			ErrUnknownField, []string{`"signature.alg"`}},
		{"extra key on Response", UnionFacilitatorToValidator, `{"status":"success","errors":[],"x":1}`,
			ErrUnknownField, []string{`"x"`}},
		{"bad base64 signature", UnionFacilitatorToValidator,
			`{"message_type":"V0JobCheated","signature":{"signature":"!!"}}`, ErrInvalidValue,
			[]string{`"signature.signature"`, "base64"}},
		{"bad receipt timestamp", UnionValidatorToMiner, `{"message_type":"V0JobAcceptedReceiptRequest",` +
			`"payload":{"job_uuid":"j","miner_hotkey":"m","validator_hotkey":"v","timestamp":"2026-01-21T13:18:49",` +
			`"time_accepted":"2026-01-21T13:18:48Z","ttl":1},"signature":"s"}`, ErrInvalidValue,
			[]string{`"payload.timestamp"`, "timezone"}},
		{"invalid UTF-8", UnionValidatorToMiner, sub(`"img"`, "\"im\xffg\""), ErrSyntax, []string{"UTF-8"}},
		{"lone surrogate", UnionValidatorToMiner, sub(`"img"`, `"\ud800"`), ErrSyntax, []string{"surrogate"}},
		{"control character", UnionValidatorToMiner, sub(`"img"`, "\"i\nmg\""), ErrSyntax,
			[]string{"control character"}},
		{"bad escape", UnionValidatorToMiner, sub(`"img"`, `"\x41"`), ErrSyntax, []string{"escape"}},
		{"too deep", UnionExecutorToMiner, `{"message_type":"V0JobFailedRequest","job_uuid":"j","context":{"a":` +
			strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}}`, ErrTooDeep, []string{"nested"}},
		{"unknown key is still validated", UnionValidatorToMiner, sub(`"env":{}`, `"env":{},"x":[1,}`),
			ErrSyntax, []string{"invalid JSON"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(c.union, []byte(c.frame))
			if err == nil {
				t.Fatalf("decoded %T without error", m)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("error %q does not wrap %v", err, c.kind)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Errorf("error %T is not a *DecodeError", err)
			}
			for _, s := range c.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

// TestDecodeLenient covers what upstream accepts: unknown keys dropped,
// forward-compatible enums, defaults, legacy aliases, both null and missing optionals.
func TestDecodeLenient(t *testing.T) {
	cases := []struct {
		name  string
		union Union
		in    string
		out   string
	}{
		{"unknown keys dropped", UnionMinerToValidator,
			`{"x":{"deep":[1,2,{"y":null}]},"message_type":"V0AcceptJobRequest","job_uuid":"j","z":1}`,
			`{"message_type":"V0AcceptJobRequest","job_uuid":"j"}`},
		{"message_type not first", UnionExecutorToMiner, `{"job_uuid":"j","message_type":"V0VolumesReadyRequest"}`,
			`{"message_type":"V0VolumesReadyRequest","job_uuid":"j"}`},
		{"missing optional", UnionExecutorToMiner, `{"message_type":"V0ExecutorReadyRequest","job_uuid":"j"}`,
			`{"message_type":"V0ExecutorReadyRequest","job_uuid":"j","executor_token":null}`},
		{"unknown open enum", UnionExecutorToMiner,
			`{"message_type":"V0HordeFailedRequest","job_uuid":"j","reported_by":"gpu_fairy","message":"m","reason":"solar_flare"}`,
			`{"message_type":"V0HordeFailedRequest","job_uuid":"j","reported_by":"unknown","message":"m","reason":"unknown","context":null}`},
		{"alias and new name: new wins", UnionExecutorToMiner,
			`{"message_type":"V0JobFailedRequest","job_uuid":"j","error_detail":"old","message":"new","error_type":"timeout"}`,
			`{"message_type":"V0JobFailedRequest","job_uuid":"j","message":"new","reason":"timeout","stage":"unknown",` +
				`"docker_process_exit_status":null,"docker_process_stdout":null,"docker_process_stderr":null,"context":null}`},
		{"escapes normalised", UnionExecutorToMiner,
			`{"message_type":"V0HordeFailedRequest","job_uuid":"\u006a","reported_by":"miner","message":"\u00e9\/",` +
				`"reason":"generic_error","context":{"k\u00e9":"\ud83d\ude00","n":1.50,"i":-0,"e":2E3}}`,
			`{"message_type":"V0HordeFailedRequest","job_uuid":"j","reported_by":"miner","message":"é/",` +
				`"reason":"generic_error","context":{"ké":"😀","n":1.5,"i":0,"e":2000.0}}`},
		{"response without message_type", UnionFacilitatorToValidator, ` {"status":"success"} `,
			`{"status":"success","errors":[]}`},
		{"whitespace", UnionValidatorToMiner, "\n\t{ \"message_type\" : \"GenericError\" }\r\n",
			`{"message_type":"GenericError","details":null}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(c.union, []byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.out {
				t.Errorf("got  %s\nwant %s", got, c.out)
			}
		})
	}
}

func TestReceiptAndResponseDecodersReject(t *testing.T) {
	if _, err := DecodeReceipt([]byte(`[]`)); !errors.Is(err, ErrNotObject) {
		t.Errorf("receipt array: %v", err)
	}
	if _, err := DecodeReceipt([]byte(`{"payload":{"receipt_type":"JobStartedReceipt"},"validator_signature":"x"}`)); !errors.Is(err, ErrMissingField) ||
		!strings.Contains(err.Error(), "payload.job_uuid") {
		t.Errorf("receipt missing field: %v", err)
	}
	if _, err := DecodeResponse([]byte(`{"status":"maybe"}`)); !errors.Is(err, ErrUnknownEnumValue) ||
		!strings.Contains(err.Error(), `"maybe"`) {
		t.Errorf("response status: %v", err)
	}
	rsp, err := DecodeResponse([]byte(`{"status":"error","errors":[{"type":"t","msg":"m","code":[1]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := Encode(rsp)
	if !bytes.Equal(got, []byte(`{"status":"error","errors":[{"msg":"m","type":"t","help":"","code":[1]}]}`)) {
		t.Errorf("response extra: %s", got)
	}
}
