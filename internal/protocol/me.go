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
//
//wire:message ExecutorToMiner MinerToValidator
type V0ExecutorFailedRequest struct {
	JobUUID       string  `wire:"job_uuid,id,job"`
	ExecutorToken *string `wire:"executor_token,optional"` // only set on the miner's internal hop
}

// V0StreamingJobNotReadyRequest is deprecated upstream but still parsed.
//
//wire:message ExecutorToMiner MinerToValidator
type V0StreamingJobNotReadyRequest struct {
	JobUUID       string  `wire:"job_uuid,id,job"`
	ExecutorToken *string `wire:"executor_token,optional"`
}

// V0ExecutorReadyRequest: the executor has started and pulled the image.
//
//wire:message ExecutorToMiner MinerToValidator
type V0ExecutorReadyRequest struct {
	JobUUID       string  `wire:"job_uuid,id,job"`
	ExecutorToken *string `wire:"executor_token,optional"` // only set on the miner's internal hop; null towards the validator
}

// V0StreamingJobReadyRequest: a streaming job accepts connections. The miner
// fills IP and MinerSignature ("0x"-hex over BlobForSigning()).
//
//wire:message ExecutorToMiner MinerToValidator
type V0StreamingJobReadyRequest struct {
	JobUUID        string  `wire:"job_uuid,id,job"`
	ExecutorToken  *string `wire:"executor_token,optional"`
	PublicKey      string  `wire:"public_key"` // the executor's PEM server certificate
	IP             *string `wire:"ip,optional"`
	Port           int     `wire:"port"`
	MinerSignature *string `wire:"miner_signature,optional"`
}

// V0VolumesReadyRequest: the volumes are downloaded.
//
//wire:message ExecutorToMiner MinerToValidator
type V0VolumesReadyRequest struct {
	JobUUID string `wire:"job_uuid,id,job"`
}

// V0ExecutionDoneRequest: the job container finished.
//
//wire:message ExecutorToMiner MinerToValidator
type V0ExecutionDoneRequest struct {
	JobUUID string `wire:"job_uuid,id,job"`
}

// V0JobFailedRequest reports a failure that is the job's fault. On input the
// legacy keys error_detail and error_type are accepted for message and reason.
//
//wire:message ExecutorToMiner MinerToValidator
type V0JobFailedRequest struct {
	JobUUID                 string           `wire:"job_uuid,id,job"`
	Message                 string           `wire:"message,optional,alias=error_detail"`
	Reason                  JobFailureReason `wire:"reason,default=unknown,alias=error_type"`
	Stage                   JobStage         `wire:"stage,default=unknown"`
	DockerProcessExitStatus *int             `wire:"docker_process_exit_status,optional"`
	DockerProcessStdout     *string          `wire:"docker_process_stdout,optional"`
	DockerProcessStderr     *string          `wire:"docker_process_stderr,optional"`
	Context                 json.RawMessage  `wire:"context,optional,object"` // JSON object or nil
}

// V0JobFinishedRequest reports success. Artifacts maps "<artifacts_dir>/<file>"
// to base64 content; UploadResults maps upload keys to a JSON string
// {"headers": {...}, "body": "..."}.
//
//wire:message ExecutorToMiner MinerToValidator
type V0JobFinishedRequest struct {
	JobUUID             string              `wire:"job_uuid,id,job"`
	DockerProcessStdout string              `wire:"docker_process_stdout"`
	DockerProcessStderr string              `wire:"docker_process_stderr"`
	Artifacts           *OrderedMap[string] `wire:"artifacts,optional"`
	UploadResults       *OrderedMap[string] `wire:"upload_results,optional"`
}

// MachineSpecs wraps the executor's free-form hardware description (hence
// "specs":{"specs":{...}} on the wire).
//
//wire:model
type MachineSpecs struct {
	Specs json.RawMessage `wire:"specs,object,notnull"` // a JSON object
}

// V0MachineSpecsRequest reports the executor's hardware.
//
//wire:message ExecutorToMiner MinerToValidator
type V0MachineSpecsRequest struct {
	JobUUID string       `wire:"job_uuid,id,job"`
	Specs   MachineSpecs `wire:"specs"`
}

// V0HordeFailedRequest reports an infrastructure failure (not the job's fault).
//
//wire:message ExecutorToMiner MinerToValidator
type V0HordeFailedRequest struct {
	JobUUID    string             `wire:"job_uuid,id,job"`
	ReportedBy JobParticipantType `wire:"reported_by"`
	Message    string             `wire:"message"`
	Reason     HordeFailureReason `wire:"reason"`
	Context    json.RawMessage    `wire:"context,optional,object"` // JSON object or nil
}

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
