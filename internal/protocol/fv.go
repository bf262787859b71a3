package protocol

import (
	"encoding/hex"
	"encoding/json"
)

// Messages of the facilitator↔validator channel (upstream fv_protocol). Upstream
// declares most of these models with extra="forbid", so unknown keys are errors.

// V0Heartbeat is the validator's keep-alive (every 60 s).
type V0Heartbeat struct{}

// V0AuthenticationRequest is the validator's first frame to the facilitator.
// PublicKey is the hex (no 0x) of the 32-byte hotkey; Signature is "0x"-hex
// sr25519 over those raw 32 bytes.
type V0AuthenticationRequest struct {
	PublicKey string
	Signature string
}

// V0JobStatusUpdate reports a job's progress to the facilitator (upstream class
// JobStatusUpdate, message_type "V0JobStatusUpdate").
type V0JobStatusUpdate struct {
	UUID     string
	Status   JobStatus
	Metadata *JobStatusMetadata
}

// JobStatusUpdate is upstream's class name for V0JobStatusUpdate.
type JobStatusUpdate = V0JobStatusUpdate

// JobStatusMetadata is the payload of a status update. Unknown keys are kept in
// Extra and re-emitted after the declared fields (upstream extra="allow").
type JobStatusMetadata struct {
	MinerResponse       *JobResultDetails
	JobRejectionDetails *JobRejectionDetails
	JobFailureDetails   *JobFailureDetails
	HordeFailureDetails *HordeFailureDetails
	StreamingDetails    *StreamingServerDetails
	Extra               OrderedMap[json.RawMessage]
}

// JobResultDetails is a completed job's result. Unknown keys are kept in Extra.
type JobResultDetails struct {
	DockerProcessStderr string
	DockerProcessStdout string
	Artifacts           *OrderedMap[string]
	UploadResults       *OrderedMap[string]
	Extra               OrderedMap[json.RawMessage]
}

// JobRejectionDetails explains a rejected job.
type JobRejectionDetails struct {
	RejectedBy JobParticipantType
	Reason     JobRejectionReason
	Message    string
	Context    json.RawMessage // any JSON, nil for null
}

// JobFailureDetails explains a job failure that is the job's fault.
type JobFailureDetails struct {
	Reason                  JobFailureReason
	Stage                   JobStage
	Message                 string
	Context                 json.RawMessage // any JSON, nil for null
	DockerProcessExitStatus *int
	DockerProcessStdout     *string
	DockerProcessStderr     *string
}

// HordeFailureDetails explains an infrastructure failure.
type HordeFailureDetails struct {
	ReportedBy JobParticipantType
	Reason     HordeFailureReason
	Message    string
	Context    json.RawMessage // any JSON, nil for null
}

// StreamingServerDetails tells the facilitator where a streaming job listens.
type StreamingServerDetails struct {
	StreamingServerCert    *string
	StreamingServerAddress *string
	StreamingServerPort    *int
}

// V0MachineSpecsUpdate forwards a miner's machine specs to the facilitator.
type V0MachineSpecsUpdate struct {
	MinerHotkey     string
	ValidatorHotkey string
	Specs           json.RawMessage // a JSON object
	BatchID         string
}

// Response is the facilitator's answer to authentication and status updates. It
// has no message_type on the wire.
type Response struct {
	Status ResponseStatus
	Errors []ResponseError // default []
}

// ResponseError is upstream's fv_protocol Error; unknown keys are kept in Extra.
type ResponseError struct {
	Msg   string
	Type  string
	Help  string // default ""
	Extra OrderedMap[json.RawMessage]
}

// V2JobRequest is a job from the facilitator. Signature (scope SignedFields)
// covers the fields described at SignedFieldsJSON.
type V2JobRequest struct {
	Signature               *Signature
	UUID                    string
	JobNamespace            *string
	ExecutorClass           ExecutorClass
	DockerImage             string
	Args                    []string
	Env                     OrderedMap[string]
	UseGPU                  bool
	Volume                  *Volume
	OutputUpload            *OutputUpload
	ArtifactsDir            *string
	OnTrustedMiner          bool
	DownloadTimeLimit       int
	ExecutionTimeLimit      int
	UploadTimeLimit         int
	StreamingStartTimeLimit int
	StreamingDetails        *StreamingDetails
}

// V0JobCheated reports that a job's result disagreed with the trusted miner's.
// Signature has scope FullRequest (see SignedPayload).
type V0JobCheated struct {
	Signature      *Signature
	JobUUID        string
	TrustedJobUUID string
	Details        json.RawMessage // any JSON, nil for null
}

// MessageType returns "V0Heartbeat".
func (V0Heartbeat) MessageType() string { return "V0Heartbeat" }

// MessageType returns "V0AuthenticationRequest".
func (V0AuthenticationRequest) MessageType() string { return "V0AuthenticationRequest" }

// MessageType returns "V0JobStatusUpdate".
func (V0JobStatusUpdate) MessageType() string { return "V0JobStatusUpdate" }

// MessageType returns "V0MachineSpecsUpdate".
func (V0MachineSpecsUpdate) MessageType() string { return "V0MachineSpecsUpdate" }

// MessageType returns "V2JobRequest".
func (V2JobRequest) MessageType() string { return "V2JobRequest" }

// MessageType returns "V0JobCheated".
func (V0JobCheated) MessageType() string { return "V0JobCheated" }

// MessageType returns "Response" (a Response carries no message_type on the wire).
func (Response) MessageType() string { return "Response" }

// BlobForSigning returns the raw 32 public-key bytes the validator signs.
func (m V0AuthenticationRequest) BlobForSigning() ([]byte, error) {
	b, err := hex.DecodeString(m.PublicKey)
	if err != nil || len(b) != 32 {
		return nil, &DecodeError{Model: "V0AuthenticationRequest", Field: "public_key",
			Msg: "expected 64 hex characters (32 bytes, no 0x)", Err: ErrInvalidValue}
	}
	return b, nil
}

// ---- V0Heartbeat

func (m *V0Heartbeat) decode(r *reader) error {
	var seen uint64
	return r.object(func(k []byte) error {
		if string(k) == "message_type" {
			return fLiteral(r, &seen, 0, "message_type", "V0Heartbeat")
		}
		return forbidden(k)
	})
}

func (m V0Heartbeat) encode(e *encoder) { e.raw(`{"message_type":"V0Heartbeat"}`) }

// ---- V0AuthenticationRequest

var authRequestFields = []string{"message_type", "public_key", "signature"}

func (m *V0AuthenticationRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0AuthenticationRequest")
		case "public_key":
			return fStr(r, &seen, 1, "public_key", &m.PublicKey)
		case "signature":
			return fStr(r, &seen, 2, "signature", &m.Signature)
		}
		return forbidden(k)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b110, authRequestFields)
}

func (m V0AuthenticationRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0AuthenticationRequest","public_key":`)
	e.str(m.PublicKey)
	e.raw(`,"signature":`)
	e.str(m.Signature)
	e.byte1('}')
}

// ---- V0JobStatusUpdate and its metadata

var statusUpdateFields = []string{"message_type", "uuid", "status", "metadata"}

func (m *V0JobStatusUpdate) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0JobStatusUpdate")
		case "uuid":
			return fID(r, &seen, 1, "uuid", &m.UUID)
		case "status":
			return fEnum(r, &seen, 2, "status", &jobStatusEnum, &m.Status)
		case "metadata":
			return fOptObj(r, &seen, 3, "metadata", &m.Metadata)
		}
		return forbidden(k)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b110, statusUpdateFields)
}

func (m V0JobStatusUpdate) encode(e *encoder) {
	e.raw(`{"message_type":"V0JobStatusUpdate","uuid":`)
	e.str(m.UUID)
	e.raw(`,"status":`)
	encodeOpenEnum(e, m.Status)
	e.raw(`,"metadata":`)
	if m.Metadata == nil {
		e.null()
	} else {
		m.Metadata.encode(e)
	}
	e.byte1('}')
}

func (m *JobStatusMetadata) decode(r *reader) error {
	var seen uint64
	var ex extras
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "miner_response":
			return fOptObj(r, &seen, 0, "miner_response", &m.MinerResponse)
		case "job_rejection_details":
			return fOptObj(r, &seen, 1, "job_rejection_details", &m.JobRejectionDetails)
		case "job_failure_details":
			return fOptObj(r, &seen, 2, "job_failure_details", &m.JobFailureDetails)
		case "horde_failure_details":
			return fOptObj(r, &seen, 3, "horde_failure_details", &m.HordeFailureDetails)
		case "streaming_details":
			return fOptObj(r, &seen, 4, "streaming_details", &m.StreamingDetails)
		}
		return ex.add(r, k)
	})
	m.Extra = ex.m
	return err
}

func (m JobStatusMetadata) encode(e *encoder) {
	e.raw(`{"miner_response":`)
	if m.MinerResponse == nil {
		e.null()
	} else {
		m.MinerResponse.encode(e)
	}
	e.raw(`,"job_rejection_details":`)
	if m.JobRejectionDetails == nil {
		e.null()
	} else {
		m.JobRejectionDetails.encode(e)
	}
	e.raw(`,"job_failure_details":`)
	if m.JobFailureDetails == nil {
		e.null()
	} else {
		m.JobFailureDetails.encode(e)
	}
	e.raw(`,"horde_failure_details":`)
	if m.HordeFailureDetails == nil {
		e.null()
	} else {
		m.HordeFailureDetails.encode(e)
	}
	e.raw(`,"streaming_details":`)
	if m.StreamingDetails == nil {
		e.null()
	} else {
		m.StreamingDetails.encode(e)
	}
	encodeExtra(e, m.Extra)
	e.byte1('}')
}

var jobResultFields = []string{"docker_process_stderr", "docker_process_stdout", "artifacts", "upload_results"}

func (m *JobResultDetails) decode(r *reader) error {
	var seen uint64
	var ex extras
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "docker_process_stderr":
			return fStr(r, &seen, 0, "docker_process_stderr", &m.DockerProcessStderr)
		case "docker_process_stdout":
			return fStr(r, &seen, 1, "docker_process_stdout", &m.DockerProcessStdout)
		case "artifacts":
			return fOptStrMap(r, &seen, 2, "artifacts", &m.Artifacts)
		case "upload_results":
			return fOptStrMap(r, &seen, 3, "upload_results", &m.UploadResults)
		}
		return ex.add(r, k)
	})
	m.Extra = ex.m
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b11, jobResultFields)
}

func (m JobResultDetails) encode(e *encoder) {
	e.raw(`{"docker_process_stderr":`)
	e.str(m.DockerProcessStderr)
	e.raw(`,"docker_process_stdout":`)
	e.str(m.DockerProcessStdout)
	e.raw(`,"artifacts":`)
	encodeOptMap(e, m.Artifacts, encStringValue)
	e.raw(`,"upload_results":`)
	encodeOptMap(e, m.UploadResults, encStringValue)
	encodeExtra(e, m.Extra)
	e.byte1('}')
}

var rejectionDetailsFields = []string{"rejected_by", "reason", "message", "context"}

func (m *JobRejectionDetails) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "rejected_by":
			return fEnum(r, &seen, 0, "rejected_by", &jobParticipantTypeEnum, &m.RejectedBy)
		case "reason":
			return fEnum(r, &seen, 1, "reason", &jobRejectionReasonEnum, &m.Reason)
		case "message":
			return fStr(r, &seen, 2, "message", &m.Message)
		case "context":
			return fRaw(r, &seen, 3, "context", rawAny, &m.Context)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b111, rejectionDetailsFields)
}

func (m JobRejectionDetails) encode(e *encoder) {
	e.raw(`{"rejected_by":`)
	encodeOpenEnum(e, m.RejectedBy)
	e.raw(`,"reason":`)
	encodeOpenEnum(e, m.Reason)
	e.raw(`,"message":`)
	e.str(m.Message)
	e.raw(`,"context":`)
	e.rawJSON("context", m.Context, rawAny)
	e.byte1('}')
}

var failureDetailsFields = []string{"reason", "stage", "message", "context", "docker_process_exit_status",
	"docker_process_stdout", "docker_process_stderr"}

func (m *JobFailureDetails) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "reason":
			return fEnum(r, &seen, 0, "reason", &jobFailureReasonEnum, &m.Reason)
		case "stage":
			return fEnum(r, &seen, 1, "stage", &jobStageEnum, &m.Stage)
		case "message":
			return fStr(r, &seen, 2, "message", &m.Message)
		case "context":
			return fRaw(r, &seen, 3, "context", rawAny, &m.Context)
		case "docker_process_exit_status":
			return fOptInt(r, &seen, 4, "docker_process_exit_status", &m.DockerProcessExitStatus)
		case "docker_process_stdout":
			return fOptStr(r, &seen, 5, "docker_process_stdout", &m.DockerProcessStdout)
		case "docker_process_stderr":
			return fOptStr(r, &seen, 6, "docker_process_stderr", &m.DockerProcessStderr)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b111, failureDetailsFields)
}

func (m JobFailureDetails) encode(e *encoder) {
	e.raw(`{"reason":`)
	encodeOpenEnum(e, m.Reason)
	e.raw(`,"stage":`)
	encodeOpenEnum(e, m.Stage)
	e.raw(`,"message":`)
	e.str(m.Message)
	e.raw(`,"context":`)
	e.rawJSON("context", m.Context, rawAny)
	e.raw(`,"docker_process_exit_status":`)
	e.optInt(m.DockerProcessExitStatus)
	e.raw(`,"docker_process_stdout":`)
	e.optStr(m.DockerProcessStdout)
	e.raw(`,"docker_process_stderr":`)
	e.optStr(m.DockerProcessStderr)
	e.byte1('}')
}

var hordeDetailsFields = []string{"reported_by", "reason", "message", "context"}

func (m *HordeFailureDetails) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "reported_by":
			return fEnum(r, &seen, 0, "reported_by", &jobParticipantTypeEnum, &m.ReportedBy)
		case "reason":
			return fEnum(r, &seen, 1, "reason", &hordeFailureReasonEnum, &m.Reason)
		case "message":
			return fStr(r, &seen, 2, "message", &m.Message)
		case "context":
			return fRaw(r, &seen, 3, "context", rawAny, &m.Context)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b111, hordeDetailsFields)
}

func (m HordeFailureDetails) encode(e *encoder) {
	e.raw(`{"reported_by":`)
	encodeOpenEnum(e, m.ReportedBy)
	e.raw(`,"reason":`)
	encodeOpenEnum(e, m.Reason)
	e.raw(`,"message":`)
	e.str(m.Message)
	e.raw(`,"context":`)
	e.rawJSON("context", m.Context, rawAny)
	e.byte1('}')
}

func (m *StreamingServerDetails) decode(r *reader) error {
	var seen uint64
	return r.object(func(k []byte) error {
		switch string(k) {
		case "streaming_server_cert":
			return fOptStr(r, &seen, 0, "streaming_server_cert", &m.StreamingServerCert)
		case "streaming_server_address":
			return fOptStr(r, &seen, 1, "streaming_server_address", &m.StreamingServerAddress)
		case "streaming_server_port":
			return fOptInt(r, &seen, 2, "streaming_server_port", &m.StreamingServerPort)
		}
		return forbidden(k)
	})
}

func (m StreamingServerDetails) encode(e *encoder) {
	e.raw(`{"streaming_server_cert":`)
	e.optStr(m.StreamingServerCert)
	e.raw(`,"streaming_server_address":`)
	e.optStr(m.StreamingServerAddress)
	e.raw(`,"streaming_server_port":`)
	e.optInt(m.StreamingServerPort)
	e.byte1('}')
}

// ---- V0MachineSpecsUpdate

var specsUpdateFields = []string{"message_type", "miner_hotkey", "validator_hotkey", "specs", "batch_id"}

func (m *V0MachineSpecsUpdate) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0MachineSpecsUpdate")
		case "miner_hotkey":
			return fStr(r, &seen, 1, "miner_hotkey", &m.MinerHotkey)
		case "validator_hotkey":
			return fStr(r, &seen, 2, "validator_hotkey", &m.ValidatorHotkey)
		case "specs":
			return fRawRequired(r, &seen, 3, "specs", rawObject, &m.Specs)
		case "batch_id":
			return fStr(r, &seen, 4, "batch_id", &m.BatchID)
		}
		return forbidden(k)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b11110, specsUpdateFields)
}

func (m V0MachineSpecsUpdate) encode(e *encoder) {
	e.raw(`{"message_type":"V0MachineSpecsUpdate","miner_hotkey":`)
	e.str(m.MinerHotkey)
	e.raw(`,"validator_hotkey":`)
	e.str(m.ValidatorHotkey)
	e.raw(`,"specs":`)
	if m.Specs == nil {
		e.raw("{}")
	} else {
		e.rawJSON("specs", m.Specs, rawObject)
	}
	e.raw(`,"batch_id":`)
	e.str(m.BatchID)
	e.byte1('}')
}

// ---- Response

var responseFields = []string{"status", "errors"}

func (m *Response) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "status":
			return fEnum(r, &seen, 0, "status", &responseStatusEnum, &m.Status)
		case "errors":
			if err := mark(&seen, 1, "errors"); err != nil {
				return err
			}
			list := []ResponseError{}
			err := r.array(func(int) error {
				var re ResponseError
				err := re.decode(r)
				list = append(list, re)
				return err
			})
			if err != nil {
				return inField(err, "errors")
			}
			m.Errors = list
			return nil
		}
		return forbidden(k)
	})
	if err != nil {
		return err
	}
	if m.Errors == nil {
		m.Errors = []ResponseError{}
	}
	return checkRequired(seen, 0b1, responseFields)
}

func (m Response) encode(e *encoder) {
	e.raw(`{"status":`)
	encodeStrictEnum(e, "status", &responseStatusEnum, m.Status)
	e.raw(`,"errors":[`)
	for i := range m.Errors {
		if i > 0 {
			e.byte1(',')
		}
		m.Errors[i].encode(e)
	}
	e.raw(`]}`)
}

var responseErrorFields = []string{"msg", "type", "help"}

func (m *ResponseError) decode(r *reader) error {
	var seen uint64
	var ex extras
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "msg":
			return fStr(r, &seen, 0, "msg", &m.Msg)
		case "type":
			return fStr(r, &seen, 1, "type", &m.Type)
		case "help":
			return fStr(r, &seen, 2, "help", &m.Help)
		}
		return ex.add(r, k)
	})
	m.Extra = ex.m
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b11, responseErrorFields)
}

func (m ResponseError) encode(e *encoder) {
	e.raw(`{"msg":`)
	e.str(m.Msg)
	e.raw(`,"type":`)
	e.str(m.Type)
	e.raw(`,"help":`)
	e.str(m.Help)
	encodeExtra(e, m.Extra)
	e.byte1('}')
}

// ---- V2JobRequest

var v2JobRequestFields = []string{"signature", "type", "message_type", "uuid", "job_namespace",
	"executor_class", "docker_image", "args", "env", "use_gpu", "volume", "output_upload", "artifacts_dir",
	"on_trusted_miner", "download_time_limit", "execution_time_limit", "upload_time_limit",
	"streaming_start_time_limit", "streaming_details"}

func (m *V2JobRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "signature":
			return fOptObj(r, &seen, 0, "signature", &m.Signature)
		case "type":
			return fLiteral(r, &seen, 1, "type", "job.new")
		case "message_type":
			return fLiteral(r, &seen, 2, "message_type", "V2JobRequest")
		case "uuid":
			return fID(r, &seen, 3, "uuid", &m.UUID)
		case "job_namespace":
			return fOptStr(r, &seen, 4, "job_namespace", &m.JobNamespace)
		case "executor_class":
			return fEnum(r, &seen, 5, "executor_class", &executorClassEnum, &m.ExecutorClass)
		case "docker_image":
			return fStr(r, &seen, 6, "docker_image", &m.DockerImage)
		case "args":
			return fStrList(r, &seen, 7, "args", &m.Args)
		case "env":
			return fStrMap(r, &seen, 8, "env", &m.Env)
		case "use_gpu":
			return fBool(r, &seen, 9, "use_gpu", &m.UseGPU)
		case "volume":
			return fOptObj(r, &seen, 10, "volume", &m.Volume)
		case "output_upload":
			return fOptObj(r, &seen, 11, "output_upload", &m.OutputUpload)
		case "artifacts_dir":
			return fOptStr(r, &seen, 12, "artifacts_dir", &m.ArtifactsDir)
		case "on_trusted_miner":
			return fBool(r, &seen, 13, "on_trusted_miner", &m.OnTrustedMiner)
		case "download_time_limit":
			return fInt(r, &seen, 14, "download_time_limit", &m.DownloadTimeLimit)
		case "execution_time_limit":
			return fInt(r, &seen, 15, "execution_time_limit", &m.ExecutionTimeLimit)
		case "upload_time_limit":
			return fInt(r, &seen, 16, "upload_time_limit", &m.UploadTimeLimit)
		case "streaming_start_time_limit":
			return fInt(r, &seen, 17, "streaming_start_time_limit", &m.StreamingStartTimeLimit)
		case "streaming_details":
			return fOptObj(r, &seen, 18, "streaming_details", &m.StreamingDetails)
		}
		return forbidden(k)
	})
	if err != nil {
		return err
	}
	const required = 1<<3 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<9 | 1<<14 | 1<<15 | 1<<16 | 1<<17
	return checkRequired(seen, required, v2JobRequestFields)
}

func (m V2JobRequest) encode(e *encoder) {
	e.raw(`{"signature":`)
	if m.Signature == nil {
		e.null()
	} else {
		m.Signature.encode(e)
	}
	e.raw(`,"type":"job.new","message_type":"V2JobRequest","uuid":`)
	e.str(m.UUID)
	e.raw(`,"job_namespace":`)
	e.optStr(m.JobNamespace)
	e.raw(`,"executor_class":`)
	encodeStrictEnum(e, "executor_class", &executorClassEnum, m.ExecutorClass)
	e.raw(`,"docker_image":`)
	e.str(m.DockerImage)
	e.raw(`,"args":`)
	e.strList(m.Args)
	e.raw(`,"env":`)
	encodeOrderedMap(e, m.Env, encStringValue)
	e.raw(`,"use_gpu":`)
	e.boolean(m.UseGPU)
	e.raw(`,"volume":`)
	encodeOptVolume(e, m.Volume)
	e.raw(`,"output_upload":`)
	encodeOptUpload(e, m.OutputUpload)
	e.raw(`,"artifacts_dir":`)
	e.optStr(m.ArtifactsDir)
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
	if m.StreamingDetails == nil {
		e.null()
	} else {
		m.StreamingDetails.encode(e)
	}
	e.byte1('}')
}

// ---- V0JobCheated

var jobCheatedFields = []string{"signature", "type", "message_type", "job_uuid", "trusted_job_uuid", "details"}

func (m *V0JobCheated) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "signature":
			return fOptObj(r, &seen, 0, "signature", &m.Signature)
		case "type":
			return fLiteral(r, &seen, 1, "type", "job.cheated")
		case "message_type":
			return fLiteral(r, &seen, 2, "message_type", "V0JobCheated")
		case "job_uuid":
			return fID(r, &seen, 3, "job_uuid", &m.JobUUID)
		case "trusted_job_uuid":
			return fID(r, &seen, 4, "trusted_job_uuid", &m.TrustedJobUUID)
		case "details":
			return fRaw(r, &seen, 5, "details", rawAny, &m.Details)
		}
		return forbidden(k)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<3|1<<4|1<<5, jobCheatedFields)
}

func (m V0JobCheated) encode(e *encoder) {
	e.raw(`{"signature":`)
	if m.Signature == nil {
		e.null()
	} else {
		m.Signature.encode(e)
	}
	e.raw(`,"type":"job.cheated","message_type":"V0JobCheated","job_uuid":`)
	e.str(m.JobUUID)
	e.raw(`,"trusted_job_uuid":`)
	e.str(m.TrustedJobUUID)
	e.raw(`,"details":`)
	e.rawJSON("details", m.Details, rawAny)
	e.byte1('}')
}
