package protocol

import (
	"encoding/json"
	"strconv"
)

// Messages of the validator↔miner channel (upstream protocol_messages), plus
// GenericError, V0InitialJobRequest and V0JobRequest, which the miner also relays
// to the executor.

// GenericError reports a malformed or unsupported message on any miner,
// validator or executor link.
type GenericError struct {
	Details *string
}

// ValidatorAuthForMiner is the validator's first frame to a miner. Signature is
// "0x"-hex sr25519 by ValidatorHotkey over BlobForSigning().
type ValidatorAuthForMiner struct {
	ValidatorHotkey string
	MinerHotkey     string
	Timestamp       int64 // unix seconds
	Signature       string
}

// UnauthorizedError rejects a validator (upstream miners never send it, but
// validators handle it).
type UnauthorizedError struct {
	Code    UnauthorizedErrorCode
	Details *string
}

// V0ExecutorManifestRequest is the miner's manifest announcement, sent right
// after authentication: executor class → executor count, in insertion order.
// Keys are validated as ExecutorClass values.
type V0ExecutorManifestRequest struct {
	Manifest OrderedMap[int]
}

// V0MainHotkeyMessage asks for (MainHotkey nil) or announces the miner's main hotkey.
type V0MainHotkeyMessage struct {
	MainHotkey *string
}

// StreamingDetails (compute_horde_core.streaming) carries the client's PEM
// certificate; the miner fills ExecutorIP.
type StreamingDetails struct {
	PublicKey  string
	ExecutorIP *string
}

// ExecutorTiming is V0InitialJobRequest.ExecutorTimingDetails: per-stage time
// limits in seconds.
type ExecutorTiming struct {
	AllowedLeeway           int
	DownloadTimeLimit       int
	ExecutionTimeLimit      int
	UploadTimeLimit         int
	StreamingStartTimeLimit int
}

// Total returns the sum of all limits.
func (t ExecutorTiming) Total() int {
	return t.AllowedLeeway + t.DownloadTimeLimit + t.ExecutionTimeLimit + t.UploadTimeLimit + t.StreamingStartTimeLimit
}

// V0InitialJobRequest reserves an executor (validator → miner → executor). It
// carries the JobStarted receipt, signed by the validator.
type V0InitialJobRequest struct {
	JobUUID                    string
	ExecutorClass              ExecutorClass
	DockerImage                *string // pre-pull hint
	TimeoutSeconds             *int    // deprecated single time limit
	Volume                     *Volume
	JobStartedReceiptPayload   JobStartedReceiptPayload
	JobStartedReceiptSignature string
	StreamingDetails           *StreamingDetails
	ExecutorTiming             *ExecutorTiming
}

// V0DeclineJobRequest declines an initial job request. Receipts (busy declines)
// are counter-signed JobStarted receipts proving the executors are busy.
type V0DeclineJobRequest struct {
	JobUUID  string
	Message  string             // default ""
	Reason   JobRejectionReason // default unknown
	Receipts []Receipt          // default []
	Context  json.RawMessage    // JSON object or nil
}

// V0AcceptJobRequest accepts an initial job request.
type V0AcceptJobRequest struct {
	JobUUID string
}

// V0JobRequest carries the full job (validator → miner → executor).
type V0JobRequest struct {
	JobUUID                string
	ExecutorClass          ExecutorClass
	DockerImage            string
	RawScript              *string
	DockerRunOptionsPreset DockerRunOptionsPreset
	DockerRunCmd           []string
	Env                    OrderedMap[string]
	Volume                 *Volume
	OutputUpload           *OutputUpload
	ArtifactsDir           *string
}

// V0JobAcceptedReceiptRequest hands the miner a JobAccepted receipt to countersign.
type V0JobAcceptedReceiptRequest struct {
	Payload   JobAcceptedReceiptPayload
	Signature string
}

// V0JobFinishedReceiptRequest hands the miner a JobFinished receipt to countersign.
type V0JobFinishedReceiptRequest struct {
	Payload   JobFinishedReceiptPayload
	Signature string
}

// MessageType returns "GenericError".
func (GenericError) MessageType() string { return "GenericError" }

// MessageType returns "ValidatorAuthForMiner".
func (ValidatorAuthForMiner) MessageType() string { return "ValidatorAuthForMiner" }

// MessageType returns "UnauthorizedError".
func (UnauthorizedError) MessageType() string { return "UnauthorizedError" }

// MessageType returns "V0ExecutorManifestRequest".
func (V0ExecutorManifestRequest) MessageType() string { return "V0ExecutorManifestRequest" }

// MessageType returns "V0MainHotkeyMessage".
func (V0MainHotkeyMessage) MessageType() string { return "V0MainHotkeyMessage" }

// MessageType returns "V0InitialJobRequest".
func (V0InitialJobRequest) MessageType() string { return "V0InitialJobRequest" }

// MessageType returns "V0DeclineJobRequest".
func (V0DeclineJobRequest) MessageType() string { return "V0DeclineJobRequest" }

// MessageType returns "V0AcceptJobRequest".
func (V0AcceptJobRequest) MessageType() string { return "V0AcceptJobRequest" }

// MessageType returns "V0JobRequest".
func (V0JobRequest) MessageType() string { return "V0JobRequest" }

// MessageType returns "V0JobAcceptedReceiptRequest".
func (V0JobAcceptedReceiptRequest) MessageType() string { return "V0JobAcceptedReceiptRequest" }

// MessageType returns "V0JobFinishedReceiptRequest".
func (V0JobFinishedReceiptRequest) MessageType() string { return "V0JobFinishedReceiptRequest" }

// BlobForSigning returns "{validator_hotkey}:{miner_hotkey}:{timestamp}".
func (m ValidatorAuthForMiner) BlobForSigning() []byte {
	b := make([]byte, 0, len(m.ValidatorHotkey)+len(m.MinerHotkey)+22)
	b = append(b, m.ValidatorHotkey...)
	b = append(b, ':')
	b = append(b, m.MinerHotkey...)
	b = append(b, ':')
	return strconv.AppendInt(b, m.Timestamp, 10)
}

// BlobForSigning returns the JobStarted receipt blob.
func (m V0InitialJobRequest) BlobForSigning() []byte {
	return m.JobStartedReceiptPayload.BlobForSigning()
}

// BlobForSigning returns the receipt payload's blob.
func (m V0JobAcceptedReceiptRequest) BlobForSigning() []byte { return m.Payload.BlobForSigning() }

// BlobForSigning returns the receipt payload's blob.
func (m V0JobFinishedReceiptRequest) BlobForSigning() []byte { return m.Payload.BlobForSigning() }

// Count returns the manifest's count for class (0 if absent).
func (m V0ExecutorManifestRequest) Count(class ExecutorClass) int {
	n, _ := m.Manifest.Get(string(class))
	return n
}

// Total returns the sum of the manifest's counts.
func (m V0ExecutorManifestRequest) Total() int {
	t := 0
	for _, e := range m.Manifest.entries {
		t += e.Value
	}
	return t
}

// ---- GenericError

func (m *GenericError) decode(r *reader) error {
	var seen uint64
	return r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "GenericError")
		case "details":
			return fOptStr(r, &seen, 1, "details", &m.Details)
		}
		return r.skipValue()
	})
}

func (m GenericError) encode(e *encoder) {
	e.raw(`{"message_type":"GenericError","details":`)
	e.optStr(m.Details)
	e.byte1('}')
}

// ---- ValidatorAuthForMiner

var validatorAuthFields = []string{"message_type", "validator_hotkey", "miner_hotkey", "timestamp", "signature"}

func (m *ValidatorAuthForMiner) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "ValidatorAuthForMiner")
		case "validator_hotkey":
			return fStr(r, &seen, 1, "validator_hotkey", &m.ValidatorHotkey)
		case "miner_hotkey":
			return fStr(r, &seen, 2, "miner_hotkey", &m.MinerHotkey)
		case "timestamp":
			return fInt64(r, &seen, 3, "timestamp", &m.Timestamp)
		case "signature":
			return fStr(r, &seen, 4, "signature", &m.Signature)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b11110, validatorAuthFields)
}

func (m ValidatorAuthForMiner) encode(e *encoder) {
	e.raw(`{"message_type":"ValidatorAuthForMiner","validator_hotkey":`)
	e.str(m.ValidatorHotkey)
	e.raw(`,"miner_hotkey":`)
	e.str(m.MinerHotkey)
	e.raw(`,"timestamp":`)
	e.int64(m.Timestamp)
	e.raw(`,"signature":`)
	e.str(m.Signature)
	e.byte1('}')
}

// ---- UnauthorizedError

var unauthorizedErrorFields = []string{"message_type", "code", "details"}

func (m *UnauthorizedError) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "UnauthorizedError")
		case "code":
			return fEnum(r, &seen, 1, "code", &unauthorizedErrorCodeEnum, &m.Code)
		case "details":
			return fOptStr(r, &seen, 2, "details", &m.Details)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b10, unauthorizedErrorFields)
}

func (m UnauthorizedError) encode(e *encoder) {
	e.raw(`{"message_type":"UnauthorizedError","code":`)
	encodeStrictEnum(e, "code", &unauthorizedErrorCodeEnum, m.Code)
	e.raw(`,"details":`)
	e.optStr(m.Details)
	e.byte1('}')
}

// ---- V0ExecutorManifestRequest

var manifestFields = []string{"message_type", "manifest"}

func decodeManifest(r *reader, dst *OrderedMap[int]) error {
	return decodeOrderedMap(r, dst, decIntValue)
}

// checkClassKeys validates that every key of m is an executor class.
func checkClassKeys[V any](m OrderedMap[V]) error {
	for _, e := range m.entries {
		if _, err := executorClassEnum.parse(e.Key); err != nil {
			return inField(err, e.Key)
		}
	}
	return nil
}

func (m *V0ExecutorManifestRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0ExecutorManifestRequest")
		case "manifest":
			if err := mark(&seen, 1, "manifest"); err != nil {
				return err
			}
			err := decodeManifest(r, &m.Manifest)
			if err == nil {
				err = checkClassKeys(m.Manifest)
			}
			return inField(err, "manifest")
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b10, manifestFields)
}

func (m V0ExecutorManifestRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0ExecutorManifestRequest","manifest":`)
	if err := checkClassKeys(m.Manifest); err != nil {
		e.fail("manifest", err.Error(), ErrUnknownEnumValue)
	}
	encodeOrderedMap(e, m.Manifest, encIntValue)
	e.byte1('}')
}

// ---- V0MainHotkeyMessage

func (m *V0MainHotkeyMessage) decode(r *reader) error {
	var seen uint64
	return r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0MainHotkeyMessage")
		case "main_hotkey":
			return fOptStr(r, &seen, 1, "main_hotkey", &m.MainHotkey)
		}
		return r.skipValue()
	})
}

func (m V0MainHotkeyMessage) encode(e *encoder) {
	e.raw(`{"message_type":"V0MainHotkeyMessage","main_hotkey":`)
	e.optStr(m.MainHotkey)
	e.byte1('}')
}

// ---- StreamingDetails, ExecutorTiming

var streamingDetailsFields = []string{"public_key", "executor_ip"}

func (m *StreamingDetails) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "public_key":
			return fStr(r, &seen, 0, "public_key", &m.PublicKey)
		case "executor_ip":
			return fOptStr(r, &seen, 1, "executor_ip", &m.ExecutorIP)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b1, streamingDetailsFields)
}

func (m StreamingDetails) encode(e *encoder) {
	e.raw(`{"public_key":`)
	e.str(m.PublicKey)
	e.raw(`,"executor_ip":`)
	e.optStr(m.ExecutorIP)
	e.byte1('}')
}

var executorTimingFields = []string{"allowed_leeway", "download_time_limit", "execution_time_limit",
	"upload_time_limit", "streaming_start_time_limit"}

func (m *ExecutorTiming) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "allowed_leeway":
			return fInt(r, &seen, 0, "allowed_leeway", &m.AllowedLeeway)
		case "download_time_limit":
			return fInt(r, &seen, 1, "download_time_limit", &m.DownloadTimeLimit)
		case "execution_time_limit":
			return fInt(r, &seen, 2, "execution_time_limit", &m.ExecutionTimeLimit)
		case "upload_time_limit":
			return fInt(r, &seen, 3, "upload_time_limit", &m.UploadTimeLimit)
		case "streaming_start_time_limit":
			return fInt(r, &seen, 4, "streaming_start_time_limit", &m.StreamingStartTimeLimit)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b11111, executorTimingFields)
}

func (m ExecutorTiming) encode(e *encoder) {
	e.raw(`{"allowed_leeway":`)
	e.int(m.AllowedLeeway)
	e.raw(`,"download_time_limit":`)
	e.int(m.DownloadTimeLimit)
	e.raw(`,"execution_time_limit":`)
	e.int(m.ExecutionTimeLimit)
	e.raw(`,"upload_time_limit":`)
	e.int(m.UploadTimeLimit)
	e.raw(`,"streaming_start_time_limit":`)
	e.int(m.StreamingStartTimeLimit)
	e.byte1('}')
}

// ---- V0InitialJobRequest

var initialJobFields = []string{"message_type", "job_uuid", "executor_class", "docker_image",
	"timeout_seconds", "volume", "job_started_receipt_payload", "job_started_receipt_signature",
	"streaming_details", "executor_timing"}

func (m *V0InitialJobRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0InitialJobRequest")
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", &m.JobUUID)
		case "executor_class":
			return fEnum(r, &seen, 2, "executor_class", &executorClassEnum, &m.ExecutorClass)
		case "docker_image":
			return fOptStr(r, &seen, 3, "docker_image", &m.DockerImage)
		case "timeout_seconds":
			return fOptInt(r, &seen, 4, "timeout_seconds", &m.TimeoutSeconds)
		case "volume":
			return fOptObj(r, &seen, 5, "volume", &m.Volume)
		case "job_started_receipt_payload":
			return fObj(r, &seen, 6, "job_started_receipt_payload", &m.JobStartedReceiptPayload)
		case "job_started_receipt_signature":
			return fStr(r, &seen, 7, "job_started_receipt_signature", &m.JobStartedReceiptSignature)
		case "streaming_details":
			return fOptObj(r, &seen, 8, "streaming_details", &m.StreamingDetails)
		case "executor_timing":
			return fOptObj(r, &seen, 9, "executor_timing", &m.ExecutorTiming)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1|1<<2|1<<6|1<<7, initialJobFields)
}

func (m V0InitialJobRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0InitialJobRequest","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"executor_class":`)
	encodeStrictEnum(e, "executor_class", &executorClassEnum, m.ExecutorClass)
	e.raw(`,"docker_image":`)
	e.optStr(m.DockerImage)
	e.raw(`,"timeout_seconds":`)
	e.optInt(m.TimeoutSeconds)
	e.raw(`,"volume":`)
	encodeOptVolume(e, m.Volume)
	e.raw(`,"job_started_receipt_payload":`)
	m.JobStartedReceiptPayload.encode(e)
	e.raw(`,"job_started_receipt_signature":`)
	e.str(m.JobStartedReceiptSignature)
	e.raw(`,"streaming_details":`)
	if m.StreamingDetails == nil {
		e.null()
	} else {
		m.StreamingDetails.encode(e)
	}
	e.raw(`,"executor_timing":`)
	if m.ExecutorTiming == nil {
		e.null()
	} else {
		m.ExecutorTiming.encode(e)
	}
	e.byte1('}')
}

// ---- V0DeclineJobRequest

var declineFields = []string{"message_type", "job_uuid", "message", "reason", "receipts", "context"}

func (m *V0DeclineJobRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0DeclineJobRequest")
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", &m.JobUUID)
		case "message":
			return fStr(r, &seen, 2, "message", &m.Message)
		case "reason":
			return fEnum(r, &seen, 3, "reason", &jobRejectionReasonEnum, &m.Reason)
		case "receipts":
			if err := mark(&seen, 4, "receipts"); err != nil {
				return err
			}
			list := []Receipt{}
			err := r.array(func(int) error {
				var rc Receipt
				err := rc.decode(r)
				list = append(list, rc)
				return err
			})
			if err != nil {
				return inField(err, "receipts")
			}
			m.Receipts = list
			return nil
		case "context":
			return fRaw(r, &seen, 5, "context", rawObject, &m.Context)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	if m.Reason == "" {
		m.Reason = JobRejectionReasonUnknown
	}
	if m.Receipts == nil {
		m.Receipts = []Receipt{}
	}
	return checkRequired(seen, 1<<1, declineFields)
}

func (m V0DeclineJobRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0DeclineJobRequest","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"message":`)
	e.str(m.Message)
	e.raw(`,"reason":`)
	encodeOpenEnum(e, m.Reason)
	e.raw(`,"receipts":[`)
	for i := range m.Receipts {
		if i > 0 {
			e.byte1(',')
		}
		m.Receipts[i].encode(e)
	}
	e.raw(`],"context":`)
	e.rawJSON("context", m.Context, rawObject)
	e.byte1('}')
}

// ---- V0AcceptJobRequest

var jobUUIDOnlyFields = []string{"message_type", "job_uuid"}

func decodeJobUUIDOnly(r *reader, model string, dst *string) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", model)
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", dst)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b10, jobUUIDOnlyFields)
}

func encodeJobUUIDOnly(e *encoder, model, jobUUID string) {
	e.raw(`{"message_type":"`)
	e.raw(model)
	e.raw(`","job_uuid":`)
	e.str(jobUUID)
	e.byte1('}')
}

func (m *V0AcceptJobRequest) decode(r *reader) error {
	return decodeJobUUIDOnly(r, "V0AcceptJobRequest", &m.JobUUID)
}

func (m V0AcceptJobRequest) encode(e *encoder) {
	encodeJobUUIDOnly(e, "V0AcceptJobRequest", m.JobUUID)
}

// ---- V0JobRequest

var jobRequestFields = []string{"message_type", "job_uuid", "executor_class", "docker_image", "raw_script",
	"docker_run_options_preset", "docker_run_cmd", "env", "volume", "output_upload", "artifacts_dir"}

func (m *V0JobRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0JobRequest")
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", &m.JobUUID)
		case "executor_class":
			return fEnum(r, &seen, 2, "executor_class", &executorClassEnum, &m.ExecutorClass)
		case "docker_image":
			return fStr(r, &seen, 3, "docker_image", &m.DockerImage)
		case "raw_script":
			return fOptStr(r, &seen, 4, "raw_script", &m.RawScript)
		case "docker_run_options_preset":
			return fEnum(r, &seen, 5, "docker_run_options_preset", &dockerRunOptionsPresetEnum, &m.DockerRunOptionsPreset)
		case "docker_run_cmd":
			return fStrList(r, &seen, 6, "docker_run_cmd", &m.DockerRunCmd)
		case "env":
			return fStrMap(r, &seen, 7, "env", &m.Env)
		case "volume":
			return fOptObj(r, &seen, 8, "volume", &m.Volume)
		case "output_upload":
			return fOptObj(r, &seen, 9, "output_upload", &m.OutputUpload)
		case "artifacts_dir":
			return fOptStr(r, &seen, 10, "artifacts_dir", &m.ArtifactsDir)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1|1<<2|1<<3|1<<5|1<<6, jobRequestFields)
}

func (m V0JobRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0JobRequest","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"executor_class":`)
	encodeStrictEnum(e, "executor_class", &executorClassEnum, m.ExecutorClass)
	e.raw(`,"docker_image":`)
	e.str(m.DockerImage)
	e.raw(`,"raw_script":`)
	e.optStr(m.RawScript)
	e.raw(`,"docker_run_options_preset":`)
	encodeStrictEnum(e, "docker_run_options_preset", &dockerRunOptionsPresetEnum, m.DockerRunOptionsPreset)
	e.raw(`,"docker_run_cmd":`)
	e.strList(m.DockerRunCmd)
	e.raw(`,"env":`)
	encodeOrderedMap(e, m.Env, encStringValue)
	e.raw(`,"volume":`)
	encodeOptVolume(e, m.Volume)
	e.raw(`,"output_upload":`)
	encodeOptUpload(e, m.OutputUpload)
	e.raw(`,"artifacts_dir":`)
	e.optStr(m.ArtifactsDir)
	e.byte1('}')
}

// ---- receipt requests

var receiptRequestFields = []string{"message_type", "payload", "signature"}

func (m *V0JobAcceptedReceiptRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0JobAcceptedReceiptRequest")
		case "payload":
			return fObj(r, &seen, 1, "payload", &m.Payload)
		case "signature":
			return fStr(r, &seen, 2, "signature", &m.Signature)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b110, receiptRequestFields)
}

func (m V0JobAcceptedReceiptRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0JobAcceptedReceiptRequest","payload":`)
	m.Payload.encode(e)
	e.raw(`,"signature":`)
	e.str(m.Signature)
	e.byte1('}')
}

func (m *V0JobFinishedReceiptRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0JobFinishedReceiptRequest")
		case "payload":
			return fObj(r, &seen, 1, "payload", &m.Payload)
		case "signature":
			return fStr(r, &seen, 2, "signature", &m.Signature)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b110, receiptRequestFields)
}

func (m V0JobFinishedReceiptRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0JobFinishedReceiptRequest","payload":`)
	m.Payload.encode(e)
	e.raw(`,"signature":`)
	e.str(m.Signature)
	e.byte1('}')
}
