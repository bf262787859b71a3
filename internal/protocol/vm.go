package protocol

import (
	"encoding/json"
	"strconv"
)

// Messages of the validator↔miner channel (upstream protocol_messages), plus
// GenericError, V0InitialJobRequest and V0JobRequest, which the miner also relays
// to the executor. Their codecs are generated from the tags (codec_gen.go).

// GenericError reports a malformed or unsupported message on any miner,
// validator or executor link.
//
//wire:message ValidatorToMiner MinerToValidator MinerToExecutor ExecutorToMiner
type GenericError struct {
	Details *string `wire:"details,optional"`
}

// ValidatorAuthForMiner is the validator's first frame to a miner. Signature is
// "0x"-hex sr25519 by ValidatorHotkey over BlobForSigning().
//
//wire:message ValidatorToMiner
type ValidatorAuthForMiner struct {
	ValidatorHotkey string `wire:"validator_hotkey"`
	MinerHotkey     string `wire:"miner_hotkey"`
	Timestamp       int64  `wire:"timestamp"` // unix seconds
	Signature       string `wire:"signature"`
}

// UnauthorizedError rejects a validator (upstream miners never send it, but
// validators handle it).
//
//wire:message MinerToValidator
type UnauthorizedError struct {
	Code    UnauthorizedErrorCode `wire:"code"`
	Details *string               `wire:"details,optional"`
}

// V0ExecutorManifestRequest is the miner's manifest announcement, sent right
// after authentication: executor class → executor count, in insertion order.
// Keys are validated as ExecutorClass values.
//
//wire:message MinerToValidator
type V0ExecutorManifestRequest struct {
	Manifest Manifest `wire:"manifest,via=Manifest"`
}

// Manifest is a miner's executor count per class, in the order it lists them: what it
// announces to validators (V0ExecutorManifestRequest), commits on chain (package hwclass
// writes the commitment) and is configured with. A class appears at most once.
type Manifest []ManifestEntry

// ManifestEntry is one class of a manifest.
type ManifestEntry struct {
	Class ExecutorClass
	Count int
}

// Count returns the manifest's count for class (0 if absent).
func (m Manifest) Count(class ExecutorClass) int {
	for _, e := range m {
		if e.Class == class {
			return e.Count
		}
	}
	return 0
}

// Total returns the sum of the manifest's counts.
func (m Manifest) Total() int {
	t := 0
	for _, e := range m {
		t += e.Count
	}
	return t
}

// Set gives class the count n, adding it at the end when absent.
func (m *Manifest) Set(class ExecutorClass, n int) {
	for i := range *m {
		if (*m)[i].Class == class {
			(*m)[i].Count = n
			return
		}
	}
	*m = append(*m, ManifestEntry{class, n})
}

// V0MainHotkeyMessage asks for (MainHotkey nil) or announces the miner's main hotkey.
//
//wire:message ValidatorToMiner MinerToValidator
type V0MainHotkeyMessage struct {
	MainHotkey *string `wire:"main_hotkey,optional"`
}

// StreamingDetails (compute_horde_core.streaming) carries the client's PEM
// certificate; the miner fills ExecutorIP.
//
//wire:model
type StreamingDetails struct {
	PublicKey  string  `wire:"public_key"`
	ExecutorIP *string `wire:"executor_ip,optional"`
}

// ExecutorTiming is V0InitialJobRequest.ExecutorTimingDetails: per-stage time
// limits in seconds.
//
//wire:model
type ExecutorTiming struct {
	AllowedLeeway           int `wire:"allowed_leeway"`
	DownloadTimeLimit       int `wire:"download_time_limit"`
	ExecutionTimeLimit      int `wire:"execution_time_limit"`
	UploadTimeLimit         int `wire:"upload_time_limit"`
	StreamingStartTimeLimit int `wire:"streaming_start_time_limit"`
}

// Total returns the sum of all limits.
func (t ExecutorTiming) Total() int {
	return t.AllowedLeeway + t.DownloadTimeLimit + t.ExecutionTimeLimit + t.UploadTimeLimit + t.StreamingStartTimeLimit
}

// V0InitialJobRequest reserves an executor (validator → miner → executor). It
// carries the JobStarted receipt, signed by the validator.
//
//wire:message ValidatorToMiner MinerToExecutor
type V0InitialJobRequest struct {
	JobUUID                    string                   `wire:"job_uuid,id,job"`
	ExecutorClass              ExecutorClass            `wire:"executor_class"`
	DockerImage                *string                  `wire:"docker_image,optional"`    // pre-pull hint
	TimeoutSeconds             *int                     `wire:"timeout_seconds,optional"` // deprecated single time limit
	Volume                     *Volume                  `wire:"volume,optional"`
	JobStartedReceiptPayload   JobStartedReceiptPayload `wire:"job_started_receipt_payload"`
	JobStartedReceiptSignature string                   `wire:"job_started_receipt_signature"`
	StreamingDetails           *StreamingDetails        `wire:"streaming_details,optional"`
	ExecutorTiming             *ExecutorTiming          `wire:"executor_timing,optional"`
}

// V0DeclineJobRequest declines an initial job request. Receipts (busy declines)
// are counter-signed JobStarted receipts proving the executors are busy.
//
//wire:message MinerToValidator
type V0DeclineJobRequest struct {
	JobUUID  string             `wire:"job_uuid,id,job"`
	Message  string             `wire:"message,optional"`
	Reason   JobRejectionReason `wire:"reason,default=unknown"`
	Receipts []Receipt          `wire:"receipts,default=[]"`
	Context  json.RawMessage    `wire:"context,optional,object"` // JSON object or nil
}

// V0AcceptJobRequest accepts an initial job request.
//
//wire:message MinerToValidator
type V0AcceptJobRequest struct {
	JobUUID string `wire:"job_uuid,id,job"`
}

// V0JobRequest carries the full job (validator → miner → executor).
//
//wire:message ValidatorToMiner MinerToExecutor
type V0JobRequest struct {
	JobUUID                string                 `wire:"job_uuid,id,job"`
	ExecutorClass          ExecutorClass          `wire:"executor_class"`
	DockerImage            string                 `wire:"docker_image"`
	RawScript              *string                `wire:"raw_script,optional"`
	DockerRunOptionsPreset DockerRunOptionsPreset `wire:"docker_run_options_preset"`
	DockerRunCmd           []string               `wire:"docker_run_cmd"`
	Env                    OrderedMap[string]     `wire:"env,optional"`
	Volume                 *Volume                `wire:"volume,optional"`
	OutputUpload           *OutputUpload          `wire:"output_upload,optional"`
	ArtifactsDir           *string                `wire:"artifacts_dir,optional"`
}

// V0JobAcceptedReceiptRequest hands the miner a JobAccepted receipt to countersign.
//
//wire:message ValidatorToMiner
type V0JobAcceptedReceiptRequest struct {
	Payload   JobAcceptedReceiptPayload `wire:"payload"`
	Signature string                    `wire:"signature"`
}

// V0JobFinishedReceiptRequest hands the miner a JobFinished receipt to countersign.
//
//wire:message ValidatorToMiner
type V0JobFinishedReceiptRequest struct {
	Payload   JobFinishedReceiptPayload `wire:"payload"`
	Signature string                    `wire:"signature"`
}

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

// checkClassKeys validates that every key of m is an executor class.
func checkClassKeys[V any](m OrderedMap[V]) error {
	for _, e := range m.entries {
		if _, err := executorClassEnum.parse(e.Key); err != nil {
			return inField(err, e.Key)
		}
	}
	return nil
}

// decodeClassMap and encodeClassMap are the codec of a map keyed by executor class.
func decodeClassMap[V any](r *reader, dst *OrderedMap[V], dec func(*reader) (V, error)) error {
	if err := decodeOrderedMap(r, dst, dec); err != nil {
		return err
	}
	return checkClassKeys(*dst)
}

func encodeClassMap[V any](e *encoder, field string, m OrderedMap[V], enc func(*encoder, V)) {
	if err := checkClassKeys(m); err != nil {
		e.fail(field, err.Error(), ErrUnknownEnumValue)
	}
	encodeOrderedMap(e, m, enc)
}

// decodeManifest reads the manifest object: executor class → count.
func decodeManifest(r *reader, dst *Manifest) error {
	var counts OrderedMap[int]
	if err := decodeClassMap(r, &counts, readIntValue); err != nil {
		return err
	}
	m := make(Manifest, 0, counts.Len())
	for class, n := range counts.All() {
		m = append(m, ManifestEntry{ExecutorClass(class), n})
	}
	*dst = m
	return nil
}

func encodeManifest(e *encoder, m Manifest) {
	var counts OrderedMap[int]
	for _, entry := range m {
		if _, dup := counts.Get(string(entry.Class)); dup {
			e.fail("manifest", "class "+strconv.Quote(string(entry.Class))+" listed twice", ErrInvalidValue)
		}
		counts.Set(string(entry.Class), entry.Count)
	}
	encodeClassMap(e, "manifest", counts, encIntValue)
}
