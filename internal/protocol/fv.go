package protocol

import (
	"encoding/hex"
	"encoding/json"
)

// Messages of the facilitator↔validator channel (upstream fv_protocol). Upstream
// declares most of these models with extra="forbid", so unknown keys are errors.

// V0Heartbeat is the validator's keep-alive (every 60 s).
//
//wire:message ValidatorToFacilitator forbid
type V0Heartbeat struct{}

// V0AuthenticationRequest is the validator's first frame to the facilitator.
// PublicKey is the hex (no 0x) of the 32-byte hotkey; Signature is "0x"-hex
// sr25519 over those raw 32 bytes.
//
//wire:message ValidatorToFacilitator forbid
type V0AuthenticationRequest struct {
	PublicKey string `wire:"public_key"`
	Signature string `wire:"signature"`
}

// V0JobStatusUpdate reports a job's progress to the facilitator (upstream class
// JobStatusUpdate, message_type "V0JobStatusUpdate").
//
//wire:message ValidatorToFacilitator forbid
type V0JobStatusUpdate struct {
	UUID     string             `wire:"uuid,id,job"`
	Status   JobStatus          `wire:"status"`
	Metadata *JobStatusMetadata `wire:"metadata,optional"`
}

// JobStatusUpdate is upstream's class name for V0JobStatusUpdate.
type JobStatusUpdate = V0JobStatusUpdate

// JobStatusMetadata is the payload of a status update. Unknown keys are kept in
// Extra and re-emitted after the declared fields (upstream extra="allow").
//
//wire:model
type JobStatusMetadata struct {
	MinerResponse       *JobResultDetails           `wire:"miner_response,optional"`
	JobRejectionDetails *JobRejectionDetails        `wire:"job_rejection_details,optional"`
	JobFailureDetails   *JobFailureDetails          `wire:"job_failure_details,optional"`
	HordeFailureDetails *HordeFailureDetails        `wire:"horde_failure_details,optional"`
	StreamingDetails    *StreamingServerDetails     `wire:"streaming_details,optional"`
	Extra               OrderedMap[json.RawMessage] `wire:",extra"`
}

// JobResultDetails is a completed job's result. Unknown keys are kept in Extra.
//
//wire:model
type JobResultDetails struct {
	DockerProcessStderr string                      `wire:"docker_process_stderr"`
	DockerProcessStdout string                      `wire:"docker_process_stdout"`
	Artifacts           *OrderedMap[string]         `wire:"artifacts,optional"`
	UploadResults       *OrderedMap[string]         `wire:"upload_results,optional"`
	Extra               OrderedMap[json.RawMessage] `wire:",extra"`
}

// JobRejectionDetails explains a rejected job.
//
//wire:model
type JobRejectionDetails struct {
	RejectedBy JobParticipantType `wire:"rejected_by"`
	Reason     JobRejectionReason `wire:"reason"`
	Message    string             `wire:"message"`
	Context    json.RawMessage    `wire:"context,optional,any"` // any JSON, nil for null
}

// JobFailureDetails explains a job failure that is the job's fault.
//
//wire:model
type JobFailureDetails struct {
	Reason                  JobFailureReason `wire:"reason"`
	Stage                   JobStage         `wire:"stage"`
	Message                 string           `wire:"message"`
	Context                 json.RawMessage  `wire:"context,optional,any"` // any JSON, nil for null
	DockerProcessExitStatus *int             `wire:"docker_process_exit_status,optional"`
	DockerProcessStdout     *string          `wire:"docker_process_stdout,optional"`
	DockerProcessStderr     *string          `wire:"docker_process_stderr,optional"`
}

// HordeFailureDetails explains an infrastructure failure.
//
//wire:model
type HordeFailureDetails struct {
	ReportedBy JobParticipantType `wire:"reported_by"`
	Reason     HordeFailureReason `wire:"reason"`
	Message    string             `wire:"message"`
	Context    json.RawMessage    `wire:"context,optional,any"` // any JSON, nil for null
}

// StreamingServerDetails tells the facilitator where a streaming job listens.
//
//wire:model forbid
type StreamingServerDetails struct {
	StreamingServerCert    *string `wire:"streaming_server_cert,optional"`
	StreamingServerAddress *string `wire:"streaming_server_address,optional"`
	StreamingServerPort    *int    `wire:"streaming_server_port,optional"`
}

// V0MachineSpecsUpdate forwards a miner's machine specs to the facilitator.
//
//wire:message ValidatorToFacilitator forbid
type V0MachineSpecsUpdate struct {
	MinerHotkey     string          `wire:"miner_hotkey"`
	ValidatorHotkey string          `wire:"validator_hotkey"`
	Specs           json.RawMessage `wire:"specs,object,notnull"` // a JSON object
	BatchID         string          `wire:"batch_id"`
}

// Response is the facilitator's answer to authentication and status updates. It
// has no message_type on the wire.
//
//wire:model forbid
type Response struct {
	Status ResponseStatus  `wire:"status"`
	Errors []ResponseError `wire:"errors,default=[]"`
}

// ResponseError is upstream's fv_protocol Error; unknown keys are kept in Extra.
//
//wire:model
type ResponseError struct {
	Msg   string                      `wire:"msg"`
	Type  string                      `wire:"type"`
	Help  string                      `wire:"help,optional"`
	Extra OrderedMap[json.RawMessage] `wire:",extra"`
}

// V2JobRequest is a job from the facilitator. Signature (scope SignedFields)
// covers the fields described at SignedFieldsJSON.
//
//wire:message FacilitatorToValidator forbid
type V2JobRequest struct {
	Signature               *Signature         `wire:"signature,optional"`
	_                       struct{}           `wire:"type,literal=job.new"`
	_                       struct{}           `wire:"message_type"`
	UUID                    string             `wire:"uuid,id,job"`
	JobNamespace            *string            `wire:"job_namespace,optional"`
	ExecutorClass           ExecutorClass      `wire:"executor_class"`
	DockerImage             string             `wire:"docker_image"`
	Args                    []string           `wire:"args"`
	Env                     OrderedMap[string] `wire:"env"`
	UseGPU                  bool               `wire:"use_gpu"`
	Volume                  *Volume            `wire:"volume,optional"`
	OutputUpload            *OutputUpload      `wire:"output_upload,optional"`
	ArtifactsDir            *string            `wire:"artifacts_dir,optional"`
	OnTrustedMiner          bool               `wire:"on_trusted_miner,optional"`
	DownloadTimeLimit       int                `wire:"download_time_limit"`
	ExecutionTimeLimit      int                `wire:"execution_time_limit"`
	UploadTimeLimit         int                `wire:"upload_time_limit"`
	StreamingStartTimeLimit int                `wire:"streaming_start_time_limit"`
	StreamingDetails        *StreamingDetails  `wire:"streaming_details,optional"`
}

// V0JobCheated reports that a job's result disagreed with the trusted miner's.
// Signature has scope FullRequest (see SignedPayload).
//
//wire:message FacilitatorToValidator forbid
type V0JobCheated struct {
	Signature      *Signature      `wire:"signature,optional"`
	_              struct{}        `wire:"type,literal=job.cheated"`
	_              struct{}        `wire:"message_type"`
	JobUUID        string          `wire:"job_uuid,id,job"`
	TrustedJobUUID string          `wire:"trusted_job_uuid,id"`
	Details        json.RawMessage `wire:"details,any"` // any JSON, nil for null
}

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
