package protocol

import (
	"encoding/json"
	"strconv"
)

// Messages the executor sends to the miner, which relays them to the validator
// (upstream ExecutorToMinerMessage; also members of MinerToValidatorMessage).

// MaxExecutorTokenLen is the longest executor token upstream produces
// ("{job_uuid}-{uuid4}").
const MaxExecutorTokenLen = 73

// ValidateExecutorToken checks an executor token's length and characters (it is
// used in URL paths).
func ValidateExecutorToken(token string) error {
	if token == "" || len(token) > MaxExecutorTokenLen {
		return newErr(ErrInvalidValue, "executor token must be 1.."+strconv.Itoa(MaxExecutorTokenLen)+" characters")
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return newErr(ErrInvalidValue, "executor token contains "+strconv.QuoteRune(rune(c)))
		}
	}
	return nil
}

// V0ExecutorFailedRequest is deprecated upstream (use V0HordeFailedRequest) but still parsed.
type V0ExecutorFailedRequest struct {
	JobUUID       string
	ExecutorToken *string // only set on the miner's internal hop
}

// V0StreamingJobNotReadyRequest is deprecated upstream but still parsed.
type V0StreamingJobNotReadyRequest struct {
	JobUUID       string
	ExecutorToken *string
}

// V0ExecutorReadyRequest: the executor has started and pulled the image.
type V0ExecutorReadyRequest struct {
	JobUUID       string
	ExecutorToken *string // only set on the miner's internal hop; null towards the validator
}

// V0StreamingJobReadyRequest: a streaming job accepts connections. The miner
// fills IP and MinerSignature ("0x"-hex over BlobForSigning()).
type V0StreamingJobReadyRequest struct {
	JobUUID        string
	ExecutorToken  *string
	PublicKey      string // the executor's PEM server certificate
	IP             *string
	Port           int
	MinerSignature *string
}

// V0VolumesReadyRequest: the volumes are downloaded.
type V0VolumesReadyRequest struct {
	JobUUID string
}

// V0ExecutionDoneRequest: the job container finished.
type V0ExecutionDoneRequest struct {
	JobUUID string
}

// V0JobFailedRequest reports a failure that is the job's fault. On input the
// legacy keys error_detail and error_type are accepted for message and reason.
type V0JobFailedRequest struct {
	JobUUID                 string
	Message                 string           // default ""
	Reason                  JobFailureReason // default unknown
	Stage                   JobStage         // default unknown
	DockerProcessExitStatus *int
	DockerProcessStdout     *string
	DockerProcessStderr     *string
	Context                 json.RawMessage // JSON object or nil
}

// V0JobFinishedRequest reports success. Artifacts maps "<artifacts_dir>/<file>"
// to base64 content; UploadResults maps upload keys to a JSON string
// {"headers": {...}, "body": "..."}.
type V0JobFinishedRequest struct {
	JobUUID             string
	DockerProcessStdout string
	DockerProcessStderr string
	Artifacts           *OrderedMap[string]
	UploadResults       *OrderedMap[string]
}

// MachineSpecs wraps the executor's free-form hardware description (hence
// "specs":{"specs":{...}} on the wire).
type MachineSpecs struct {
	Specs json.RawMessage // a JSON object
}

// V0MachineSpecsRequest reports the executor's hardware.
type V0MachineSpecsRequest struct {
	JobUUID string
	Specs   MachineSpecs
}

// V0HordeFailedRequest reports an infrastructure failure (not the job's fault).
type V0HordeFailedRequest struct {
	JobUUID    string
	ReportedBy JobParticipantType
	Message    string
	Reason     HordeFailureReason
	Context    json.RawMessage // JSON object or nil
}

// MessageType returns "V0ExecutorFailedRequest".
func (V0ExecutorFailedRequest) MessageType() string { return "V0ExecutorFailedRequest" }

// MessageType returns "V0StreamingJobNotReadyRequest".
func (V0StreamingJobNotReadyRequest) MessageType() string { return "V0StreamingJobNotReadyRequest" }

// MessageType returns "V0ExecutorReadyRequest".
func (V0ExecutorReadyRequest) MessageType() string { return "V0ExecutorReadyRequest" }

// MessageType returns "V0StreamingJobReadyRequest".
func (V0StreamingJobReadyRequest) MessageType() string { return "V0StreamingJobReadyRequest" }

// MessageType returns "V0VolumesReadyRequest".
func (V0VolumesReadyRequest) MessageType() string { return "V0VolumesReadyRequest" }

// MessageType returns "V0ExecutionDoneRequest".
func (V0ExecutionDoneRequest) MessageType() string { return "V0ExecutionDoneRequest" }

// MessageType returns "V0JobFailedRequest".
func (V0JobFailedRequest) MessageType() string { return "V0JobFailedRequest" }

// MessageType returns "V0JobFinishedRequest".
func (V0JobFinishedRequest) MessageType() string { return "V0JobFinishedRequest" }

// MessageType returns "V0MachineSpecsRequest".
func (V0MachineSpecsRequest) MessageType() string { return "V0MachineSpecsRequest" }

// MessageType returns "V0HordeFailedRequest".
func (V0HordeFailedRequest) MessageType() string { return "V0HordeFailedRequest" }

// BlobForSigning returns "{job_uuid}:{ip}:{port}:{public_key}", a nil IP written
// as "None" like upstream's f-string.
func (m V0StreamingJobReadyRequest) BlobForSigning() []byte {
	b := make([]byte, 0, len(m.JobUUID)+len(m.PublicKey)+32)
	b = append(b, m.JobUUID...)
	b = append(b, ':')
	if m.IP == nil {
		b = append(b, "None"...)
	} else {
		b = append(b, *m.IP...)
	}
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(m.Port), 10)
	b = append(b, ':')
	return append(b, m.PublicKey...)
}

// ---- job_uuid + executor_token messages

var tokenMsgFields = []string{"message_type", "job_uuid", "executor_token"}

func decodeTokenMsg(r *reader, model string, jobUUID *string, token **string) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", model)
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", jobUUID)
		case "executor_token":
			return fOptStr(r, &seen, 2, "executor_token", token)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b10, tokenMsgFields)
}

func encodeTokenMsg(e *encoder, model, jobUUID string, token *string) {
	e.raw(`{"message_type":"`)
	e.raw(model)
	e.raw(`","job_uuid":`)
	e.str(jobUUID)
	e.raw(`,"executor_token":`)
	e.optStr(token)
	e.byte1('}')
}

func (m *V0ExecutorFailedRequest) decode(r *reader) error {
	return decodeTokenMsg(r, "V0ExecutorFailedRequest", &m.JobUUID, &m.ExecutorToken)
}

func (m V0ExecutorFailedRequest) encode(e *encoder) {
	encodeTokenMsg(e, "V0ExecutorFailedRequest", m.JobUUID, m.ExecutorToken)
}

func (m *V0StreamingJobNotReadyRequest) decode(r *reader) error {
	return decodeTokenMsg(r, "V0StreamingJobNotReadyRequest", &m.JobUUID, &m.ExecutorToken)
}

func (m V0StreamingJobNotReadyRequest) encode(e *encoder) {
	encodeTokenMsg(e, "V0StreamingJobNotReadyRequest", m.JobUUID, m.ExecutorToken)
}

func (m *V0ExecutorReadyRequest) decode(r *reader) error {
	return decodeTokenMsg(r, "V0ExecutorReadyRequest", &m.JobUUID, &m.ExecutorToken)
}

func (m V0ExecutorReadyRequest) encode(e *encoder) {
	encodeTokenMsg(e, "V0ExecutorReadyRequest", m.JobUUID, m.ExecutorToken)
}

// ---- V0StreamingJobReadyRequest

var streamingReadyFields = []string{"message_type", "job_uuid", "executor_token", "public_key", "ip",
	"port", "miner_signature"}

func (m *V0StreamingJobReadyRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0StreamingJobReadyRequest")
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", &m.JobUUID)
		case "executor_token":
			return fOptStr(r, &seen, 2, "executor_token", &m.ExecutorToken)
		case "public_key":
			return fStr(r, &seen, 3, "public_key", &m.PublicKey)
		case "ip":
			return fOptStr(r, &seen, 4, "ip", &m.IP)
		case "port":
			return fInt(r, &seen, 5, "port", &m.Port)
		case "miner_signature":
			return fOptStr(r, &seen, 6, "miner_signature", &m.MinerSignature)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1|1<<3|1<<5, streamingReadyFields)
}

func (m V0StreamingJobReadyRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0StreamingJobReadyRequest","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"executor_token":`)
	e.optStr(m.ExecutorToken)
	e.raw(`,"public_key":`)
	e.str(m.PublicKey)
	e.raw(`,"ip":`)
	e.optStr(m.IP)
	e.raw(`,"port":`)
	e.int(m.Port)
	e.raw(`,"miner_signature":`)
	e.optStr(m.MinerSignature)
	e.byte1('}')
}

// ---- V0VolumesReadyRequest, V0ExecutionDoneRequest

func (m *V0VolumesReadyRequest) decode(r *reader) error {
	return decodeJobUUIDOnly(r, "V0VolumesReadyRequest", &m.JobUUID)
}

func (m V0VolumesReadyRequest) encode(e *encoder) {
	encodeJobUUIDOnly(e, "V0VolumesReadyRequest", m.JobUUID)
}

func (m *V0ExecutionDoneRequest) decode(r *reader) error {
	return decodeJobUUIDOnly(r, "V0ExecutionDoneRequest", &m.JobUUID)
}

func (m V0ExecutionDoneRequest) encode(e *encoder) {
	encodeJobUUIDOnly(e, "V0ExecutionDoneRequest", m.JobUUID)
}

// ---- V0JobFailedRequest

// bits 9 and 10 are the legacy aliases error_detail and error_type.
var jobFailedFields = []string{"message_type", "job_uuid", "message", "reason", "stage",
	"docker_process_exit_status", "docker_process_stdout", "docker_process_stderr", "context",
	"error_detail", "error_type"}

func (m *V0JobFailedRequest) decode(r *reader) error {
	var seen uint64
	var aliasMessage string
	var aliasReason JobFailureReason
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0JobFailedRequest")
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", &m.JobUUID)
		case "message":
			return fStr(r, &seen, 2, "message", &m.Message)
		case "reason":
			return fEnum(r, &seen, 3, "reason", &jobFailureReasonEnum, &m.Reason)
		case "stage":
			return fEnum(r, &seen, 4, "stage", &jobStageEnum, &m.Stage)
		case "docker_process_exit_status":
			return fOptInt(r, &seen, 5, "docker_process_exit_status", &m.DockerProcessExitStatus)
		case "docker_process_stdout":
			return fOptStr(r, &seen, 6, "docker_process_stdout", &m.DockerProcessStdout)
		case "docker_process_stderr":
			return fOptStr(r, &seen, 7, "docker_process_stderr", &m.DockerProcessStderr)
		case "context":
			return fRaw(r, &seen, 8, "context", rawObject, &m.Context)
		case "error_detail":
			return fStr(r, &seen, 9, "error_detail", &aliasMessage)
		case "error_type":
			return fEnum(r, &seen, 10, "error_type", &jobFailureReasonEnum, &aliasReason)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	// AliasChoices("message", "error_detail"): the first present choice wins.
	if seen&(1<<2) == 0 && seen&(1<<9) != 0 {
		m.Message = aliasMessage
	}
	if seen&(1<<3) == 0 && seen&(1<<10) != 0 {
		m.Reason = aliasReason
	}
	if m.Reason == "" {
		m.Reason = JobFailureReasonUnknown
	}
	if m.Stage == "" {
		m.Stage = JobStageUnknown
	}
	return checkRequired(seen, 0b10, jobFailedFields)
}

func (m V0JobFailedRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0JobFailedRequest","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"message":`)
	e.str(m.Message)
	e.raw(`,"reason":`)
	encodeOpenEnum(e, m.Reason)
	e.raw(`,"stage":`)
	encodeOpenEnum(e, m.Stage)
	e.raw(`,"docker_process_exit_status":`)
	e.optInt(m.DockerProcessExitStatus)
	e.raw(`,"docker_process_stdout":`)
	e.optStr(m.DockerProcessStdout)
	e.raw(`,"docker_process_stderr":`)
	e.optStr(m.DockerProcessStderr)
	e.raw(`,"context":`)
	e.rawJSON("context", m.Context, rawObject)
	e.byte1('}')
}

// ---- V0JobFinishedRequest

var jobFinishedFields2 = []string{"message_type", "job_uuid", "docker_process_stdout",
	"docker_process_stderr", "artifacts", "upload_results"}

func (m *V0JobFinishedRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0JobFinishedRequest")
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", &m.JobUUID)
		case "docker_process_stdout":
			return fStr(r, &seen, 2, "docker_process_stdout", &m.DockerProcessStdout)
		case "docker_process_stderr":
			return fStr(r, &seen, 3, "docker_process_stderr", &m.DockerProcessStderr)
		case "artifacts":
			return fOptStrMap(r, &seen, 4, "artifacts", &m.Artifacts)
		case "upload_results":
			return fOptStrMap(r, &seen, 5, "upload_results", &m.UploadResults)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b1110, jobFinishedFields2)
}

func (m V0JobFinishedRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0JobFinishedRequest","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"docker_process_stdout":`)
	e.str(m.DockerProcessStdout)
	e.raw(`,"docker_process_stderr":`)
	e.str(m.DockerProcessStderr)
	e.raw(`,"artifacts":`)
	encodeOptMap(e, m.Artifacts, encStringValue)
	e.raw(`,"upload_results":`)
	encodeOptMap(e, m.UploadResults, encStringValue)
	e.byte1('}')
}

// ---- V0MachineSpecsRequest

var machineSpecsFields = []string{"specs"}

func (m *MachineSpecs) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		if string(k) == "specs" {
			return fRawRequired(r, &seen, 0, "specs", rawObject, &m.Specs)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b1, machineSpecsFields)
}

func (m MachineSpecs) encode(e *encoder) {
	e.raw(`{"specs":`)
	if m.Specs == nil {
		e.raw("{}")
	} else {
		e.rawJSON("specs", m.Specs, rawObject)
	}
	e.byte1('}')
}

var machineSpecsRequestFields = []string{"message_type", "job_uuid", "specs"}

func (m *V0MachineSpecsRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0MachineSpecsRequest")
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", &m.JobUUID)
		case "specs":
			return fObj(r, &seen, 2, "specs", &m.Specs)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b110, machineSpecsRequestFields)
}

func (m V0MachineSpecsRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0MachineSpecsRequest","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"specs":`)
	m.Specs.encode(e)
	e.byte1('}')
}

// ---- V0HordeFailedRequest

var hordeFailedFields = []string{"message_type", "job_uuid", "reported_by", "message", "reason", "context"}

func (m *V0HordeFailedRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0HordeFailedRequest")
		case "job_uuid":
			return fID(r, &seen, 1, "job_uuid", &m.JobUUID)
		case "reported_by":
			return fEnum(r, &seen, 2, "reported_by", &jobParticipantTypeEnum, &m.ReportedBy)
		case "message":
			return fStr(r, &seen, 3, "message", &m.Message)
		case "reason":
			return fEnum(r, &seen, 4, "reason", &hordeFailureReasonEnum, &m.Reason)
		case "context":
			return fRaw(r, &seen, 5, "context", rawObject, &m.Context)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b11110, hordeFailedFields)
}

func (m V0HordeFailedRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0HordeFailedRequest","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"reported_by":`)
	encodeOpenEnum(e, m.ReportedBy)
	e.raw(`,"message":`)
	e.str(m.Message)
	e.raw(`,"reason":`)
	encodeOpenEnum(e, m.Reason)
	e.raw(`,"context":`)
	e.rawJSON("context", m.Context, rawObject)
	e.byte1('}')
}
