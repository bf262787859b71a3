package protocol

import (
	"slices"
	"strconv"
	"strings"
)

// enumDef describes one wire enum: its values in upstream order and, for the
// forward-compatible enums, the value unknown strings decode to.
type enumDef[T ~string] struct {
	name     string
	values   []T
	fallback T // "" means strict: unknown strings are an error
}

func (d *enumDef[T]) parse(s string) (T, error) {
	for _, v := range d.values {
		if string(v) == s {
			return v, nil
		}
	}
	if d.fallback != "" {
		return d.fallback, nil
	}
	return "", newErr(ErrUnknownEnumValue, "unknown "+d.name+" value "+strconv.Quote(s)+
		" (expected one of "+d.list()+")")
}

func (d *enumDef[T]) valid(v T) bool { return slices.Contains(d.values, v) }

func (d *enumDef[T]) list() string {
	var b strings.Builder
	for i, v := range d.values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(string(v)))
	}
	return b.String()
}

// readEnum reads a string field and parses it with d.
func readEnum[T ~string](r *reader, d *enumDef[T]) (T, error) {
	s, err := r.readString()
	if err != nil {
		return "", err
	}
	return d.parse(s)
}

// encodeEnum writes an enum value: a strict enum fails on values outside its set; a
// forward-compatible one writes its zero value as "unknown" (upstream's default).
func encodeEnum[T ~string](e *encoder, field string, d *enumDef[T], v T) {
	switch {
	case d.fallback != "" && v == "":
		e.str(string(d.fallback))
	case d.fallback == "" && !d.valid(v):
		e.fail(field, "invalid "+d.name+" value "+strconv.Quote(string(v)), ErrUnknownEnumValue)
		e.str(string(v))
	default:
		e.str(string(v))
	}
}

// orDefault returns v, or def for the zero value.
func orDefault[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

// ExecutorClass is a hardware class of executors (compute_horde_core.executor_class).
// Strict: unknown values are a decode error.
//
//wire:enum
type ExecutorClass string

// Executor classes, in upstream order.
const (
	ExecutorClassSpinUp4minGPU24GB ExecutorClass = "spin_up-4min.gpu-24gb"
	ExecutorClassAlwaysOnGPU24GB   ExecutorClass = "always_on.gpu-24gb"
	ExecutorClassAlwaysOnLLMA6000  ExecutorClass = "always_on.llm.a6000"
	ExecutorClassAlwaysOnTest      ExecutorClass = "always_on.test"
	ExecutorClassAlwaysOnCPU8c16GB ExecutorClass = "always_on.cpu.8c.16gb"
	DefaultExecutorClass                         = ExecutorClassSpinUp4minGPU24GB
	DefaultLLMExecutorClass                      = ExecutorClassAlwaysOnLLMA6000
)

// Valid reports whether c is a known executor class.
func (c ExecutorClass) Valid() bool { return executorClassEnum.valid(c) }

// JobStatus is a job's status as reported to the facilitator (protocol_consts.JobStatus).
// Forward-compatible: unknown strings decode to JobStatusUnknown.
//
//wire:enum open
type JobStatus string

// Job statuses, in upstream order.
const (
	JobStatusUnknown        JobStatus = "unknown"
	JobStatusSent           JobStatus = "sent"
	JobStatusReceived       JobStatus = "received"
	JobStatusAccepted       JobStatus = "accepted"
	JobStatusExecutorReady  JobStatus = "executor_ready"
	JobStatusStreamingReady JobStatus = "streaming_ready"
	JobStatusVolumesReady   JobStatus = "volumes_ready"
	JobStatusExecutionDone  JobStatus = "execution_done"
	JobStatusCompleted      JobStatus = "completed"
	JobStatusRejected       JobStatus = "rejected"
	JobStatusFailed         JobStatus = "failed"
	JobStatusHordeFailed    JobStatus = "horde_failed"
)

// IsEnd reports whether s is terminal (completed, rejected, failed, horde_failed).
func (s JobStatus) IsEnd() bool {
	switch s {
	case JobStatusCompleted, JobStatusRejected, JobStatusFailed, JobStatusHordeFailed:
		return true
	}
	return false
}

// JobStage is the executor stage a job failure happened in (protocol_consts.JobStage).
// Forward-compatible.
//
//wire:enum open
type JobStage string

// Job stages, in upstream order.
const (
	JobStageUnknown          JobStage = "unknown"
	JobStageExecutorStartup  JobStage = "executor_startup"
	JobStageVolumeDownload   JobStage = "volume_download"
	JobStageStreamingStartup JobStage = "streaming_startup"
	JobStageExecution        JobStage = "execution"
	JobStageResultUpload     JobStage = "result_upload"
)

// HordeFailureReason says why the infrastructure (not the job) failed
// (protocol_consts.HordeFailureReason). Forward-compatible.
//
//wire:enum open
type HordeFailureReason string

// Horde failure reasons, in upstream order.
const (
	HordeFailureReasonUnknown                           HordeFailureReason = "unknown"
	HordeFailureReasonGenericError                      HordeFailureReason = "generic_error"
	HordeFailureReasonUnhandledException                HordeFailureReason = "unhandled_exception"
	HordeFailureReasonUnhandledTimeout                  HordeFailureReason = "unhandled_timeout"
	HordeFailureReasonStreamingFailed                   HordeFailureReason = "streaming_failed"
	HordeFailureReasonMinerConnectionFailed             HordeFailureReason = "miner_connection_failed"
	HordeFailureReasonInitialResponseTimedOut           HordeFailureReason = "initial_response_timed_out"
	HordeFailureReasonExecutorReadinessResponseTimedOut HordeFailureReason = "executor_readiness_response_timed_out"
	HordeFailureReasonVolumesTimedOut                   HordeFailureReason = "volumes_timed_out"
	HordeFailureReasonStreamingJobReadyTimedOut         HordeFailureReason = "streaming_job_ready_timed_out"
	HordeFailureReasonExecutionTimedOut                 HordeFailureReason = "execution_timed_out"
	HordeFailureReasonFinalResponseTimedOut             HordeFailureReason = "final_response_timed_out"
	HordeFailureReasonExecutorSpinupFailed              HordeFailureReason = "executor_spinup_failed"
	HordeFailureReasonExecutorDisconnected              HordeFailureReason = "executor_disconnected"
	HordeFailureReasonSecurityCheckFailed               HordeFailureReason = "security_check_failed"
)

// JobFailureReason says why the user's job failed (protocol_consts.JobFailureReason).
// Forward-compatible.
//
//wire:enum open
type JobFailureReason string

// Job failure reasons, in upstream order.
const (
	JobFailureReasonUnknown           JobFailureReason = "unknown"
	JobFailureReasonTimeout           JobFailureReason = "timeout"
	JobFailureReasonNonzeroReturnCode JobFailureReason = "nonzero_return_code"
	JobFailureReasonDownloadFailed    JobFailureReason = "download_failed"
	JobFailureReasonUploadFailed      JobFailureReason = "upload_failed"
)

// JobRejectionReason says why a job was declined or never routed
// (protocol_consts.JobRejectionReason). Forward-compatible.
//
//wire:enum open
type JobRejectionReason string

// Job rejection reasons, in upstream order, then horde's extension.
const (
	JobRejectionReasonUnknown              JobRejectionReason = "unknown"
	JobRejectionReasonBusy                 JobRejectionReason = "busy"
	JobRejectionReasonInvalidSignature     JobRejectionReason = "invalid_signature"
	JobRejectionReasonNoMinerForJob        JobRejectionReason = "no_miner_for_job"
	JobRejectionReasonValidatorBlacklisted JobRejectionReason = "validator_blacklisted"
	// JobRejectionReasonClassNotOffered is a horde extension: the executor class is
	// absent from the manifest the validator honours. Upstream peers read it as "unknown".
	JobRejectionReasonClassNotOffered JobRejectionReason = "class_not_offered"
)

// JobParticipantType names who reported or rejected (protocol_consts.JobParticipantType).
// Forward-compatible.
//
//wire:enum open
type JobParticipantType string

// Job participants, in upstream order.
const (
	JobParticipantTypeUnknown     JobParticipantType = "unknown"
	JobParticipantTypeSDK         JobParticipantType = "sdk"
	JobParticipantTypeFacilitator JobParticipantType = "facilitator"
	JobParticipantTypeValidator   JobParticipantType = "validator"
	JobParticipantTypeMiner       JobParticipantType = "miner"
	JobParticipantTypeExecutor    JobParticipantType = "executor"
)

// UnauthorizedErrorCode is UnauthorizedError.Code. Strict.
//
//wire:enum name=UnauthorizedError.Code
type UnauthorizedErrorCode string

// Unauthorized error codes, in upstream order.
const (
	UnauthorizedErrorCodeTokenTooOld       UnauthorizedErrorCode = "TOKEN_TOO_OLD"
	UnauthorizedErrorCodeUnknownValidator  UnauthorizedErrorCode = "UNKNOWN_VALIDATOR"
	UnauthorizedErrorCodeValidatorInactive UnauthorizedErrorCode = "VALIDATOR_INACTIVE"
)

// VolumeType is the volume discriminator (volume_type). Strict.
//
//wire:enum
type VolumeType string

// Volume types, in upstream order.
const (
	VolumeTypeInline            VolumeType = "inline"
	VolumeTypeZipURL            VolumeType = "zip_url"
	VolumeTypeSingleFile        VolumeType = "single_file"
	VolumeTypeMultiVolume       VolumeType = "multi_volume"
	VolumeTypeHuggingfaceVolume VolumeType = "huggingface_volume"
)

// OutputUploadType is the output upload discriminator (output_upload_type). Strict.
//
//wire:enum
type OutputUploadType string

// Output upload types, in upstream order.
const (
	OutputUploadTypeZipAndHTTPPost OutputUploadType = "zip_and_http_post"
	OutputUploadTypeZipAndHTTPPut  OutputUploadType = "zip_and_http_put"
	OutputUploadTypeMultiUpload    OutputUploadType = "multi_upload"
	OutputUploadTypeSingleFilePost OutputUploadType = "single_file_post"
	OutputUploadTypeSingleFilePut  OutputUploadType = "single_file_put"
)

// ReceiptType is the receipt payload discriminator (receipt_type). Strict.
//
//wire:enum
type ReceiptType string

// Receipt types, in upstream order, then horde's extension.
const (
	ReceiptTypeJobStarted  ReceiptType = "JobStartedReceipt"
	ReceiptTypeJobAccepted ReceiptType = "JobAcceptedReceipt"
	ReceiptTypeJobFinished ReceiptType = "JobFinishedReceipt"
	// ReceiptTypeWorkInterval is a horde extension (WorkIntervalReceiptPayload).
	ReceiptTypeWorkInterval ReceiptType = "WorkInterval"
)

// SignatureScope is compute_horde_core's Signature.signature_scope. Strict.
//
//wire:enum
type SignatureScope string

// Signature scopes, in upstream order.
const (
	SignatureScopeSignedFields SignatureScope = "SignedFields"
	SignatureScopeFullRequest  SignatureScope = "FullRequest"
)

// DockerRunOptionsPreset is V0JobRequest.docker_run_options_preset. Strict.
//
//wire:enum
type DockerRunOptionsPreset string

// Docker run option presets, in upstream order.
const (
	DockerRunOptionsPresetNvidiaAll DockerRunOptionsPreset = "nvidia_all"
	DockerRunOptionsPresetNone      DockerRunOptionsPreset = "none"
)

// ResponseStatus is the facilitator's Response.status. Strict.
//
//wire:enum name=Response.status
type ResponseStatus string

// Response statuses, in upstream order.
const (
	ResponseStatusError   ResponseStatus = "error"
	ResponseStatusSuccess ResponseStatus = "success"
)
