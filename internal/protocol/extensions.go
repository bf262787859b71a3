package protocol

import (
	"encoding/json"
	"strconv"
)

// horde's protocol extensions, in upstream style. Upstream peers do not know
// these message types or values; they reject the frames and carry on.

// WorkIntervalReceiptPayload (extension, receipt_type "WorkInterval") proves
// WorkedSeconds of execution of a job in one 10-minute accounting interval. The
// validator signs BlobForSigning() (sorted-keys Python JSON, like upstream's
// receipts) and the miner countersigns it; the miner serves the Receipt in its
// receipt pages like the other types. One receipt per completed interval, plus a
// final partial one when a job ends normally.
//
//wire:model receipt
type WorkIntervalReceiptPayload struct {
	JobUUID         string        `wire:"job_uuid,id"`
	MinerHotkey     string        `wire:"miner_hotkey"`
	ValidatorHotkey string        `wire:"validator_hotkey"`
	Timestamp       Timestamp     `wire:"timestamp"`
	_               struct{}      `wire:"receipt_type,literal=WorkInterval"`
	ExecutorClass   ExecutorClass `wire:"executor_class"`
	IntervalIndex   int           `wire:"interval_index"` // 0-based index of the interval within the job
	IntervalStart   Timestamp     `wire:"interval_start"` // start of the interval
	IntervalEnd     Timestamp     `wire:"interval_end"`   // end of the interval (or of the job, for the final one)
	WorkedSeconds   int           `wire:"worked_seconds"` // whole seconds of execution within [IntervalStart, IntervalEnd]
}

// V0WorkIntervalReceiptRequest (extension, validator → miner) hands the miner a
// work-interval receipt to verify, countersign and store. Signature is "0x"-hex
// sr25519 by the validator over Payload.BlobForSigning().
//
//wire:message ValidatorToMiner
type V0WorkIntervalReceiptRequest struct {
	Payload   WorkIntervalReceiptPayload `wire:"payload"`
	Signature string                     `wire:"signature"`
}

// ClassValue is one executor class's value as a validator currently rates it.
//
//wire:model
type ClassValue struct {
	RelativeValue float64 `wire:"relative_value"` // the class's relative value in the hardware class registry
	Multiplier    float64 `wire:"multiplier"`     // the current demand multiplier (smoothed, bounded)
}

// V0ClassValuesMessage (extension, validator → miner, after authentication and
// whenever the values change) publishes the validator's per-class values and its
// reward rate, so a miner can tell which classes are profitable. A class earns
// RewardRate × RelativeValue × Multiplier per executor-hour (see RewardPerHour).
//
//wire:message ValidatorToMiner
type V0ClassValuesMessage struct {
	ClassValues OrderedMap[ClassValue] `wire:"class_values,via=ClassValues"` // executor class → value
	RewardRate  float64                `wire:"reward_rate"`                  // reward (alpha) per executor-hour of value 1.0
}

// BlobForSigning returns the receipt payload's blob.
func (m V0WorkIntervalReceiptRequest) BlobForSigning() []byte { return m.Payload.BlobForSigning() }

// RewardPerHour returns RewardRate × RelativeValue × Multiplier for class.
func (m V0ClassValuesMessage) RewardPerHour(class ExecutorClass) (float64, bool) {
	v, ok := m.ClassValues.Get(string(class))
	if !ok {
		return 0, false
	}
	return m.RewardRate * v.RelativeValue * v.Multiplier, true
}

func decodeClassValues(r *reader, dst *OrderedMap[ClassValue]) error {
	return decodeClassMap(r, dst, decodePayload[ClassValue])
}

func encodeClassValues(e *encoder, m OrderedMap[ClassValue]) {
	encodeClassMap(e, "class_values", m, func(e *encoder, v ClassValue) { v.encode(e) })
}

// V0ClassValuesUpdate (extension, validator → facilitator, after authentication and
// whenever the values change) publishes the same per-class values miners receive, so the
// facilitator can price each class by its current demand multiplier. Like every message a
// validator sends the facilitator but the heartbeat, it is answered with one Response (an
// upstream facilitator, which does not know it, answers with a parse error).
//
//wire:message ValidatorToFacilitator
type V0ClassValuesUpdate struct {
	ClassValues OrderedMap[ClassValue] `wire:"class_values,via=ClassValues"` // executor class → value
	RewardRate  float64                `wire:"reward_rate"`                  // reward (alpha) per executor-hour of value 1.0
}

// V0JobCheatDetected (extension, validator → facilitator) reports that a job the
// facilitator sent gave an output that differs from the same job re-run on the validator's
// trusted miner (a cross-check), or that a user's cheat report (V0JobCheated) was
// confirmed. The facilitator can refund or flag the job; the validator has already
// lowered the miner's standing.
//
//wire:message ValidatorToFacilitator
type V0JobCheatDetected struct {
	JobUUID        string          `wire:"job_uuid,id,job"`  // the job as the facilitator sent it
	TrustedJobUUID string          `wire:"trusted_job_uuid"` // the re-run on the trusted miner
	MinerHotkey    string          `wire:"miner_hotkey"`     // the miner whose output differed
	Details        json.RawMessage `wire:"details,any"`      // what differed (any JSON)
}

// V0JobWorkReport (extension, validator → facilitator) reports one 10-minute accounting
// interval of a facilitator job as the validator signs it, so the facilitator charges the
// user as the job runs: JobUUID is the job as the facilitator sent it, AttemptUUID the
// attempt on a miner that did the work (a job retried on another miner has several). The
// terminal status update names the attempt that ended the job in its metadata under
// "attempt_uuid"; work of other attempts ended by the horde's failures is not the user's to
// pay.
//
//wire:message ValidatorToFacilitator
type V0JobWorkReport struct {
	JobUUID       string        `wire:"job_uuid,id,job"`
	AttemptUUID   string        `wire:"attempt_uuid"`
	ExecutorClass ExecutorClass `wire:"executor_class"`
	IntervalIndex int           `wire:"interval_index"`
	WorkedSeconds int           `wire:"worked_seconds"`
}

// V0ExecutorCapacityUpdate (extension, validator → facilitator, after authentication and
// whenever it changes) tells how many executors of each class the validator could start a
// job on now: the executors its miners' honoured manifests offer, less its own jobs running
// there. The facilitator sends no more jobs of a class than that, so the rest wait in its
// queue, where users share by stake, instead of being rejected for want of a miner.
//
//wire:message ValidatorToFacilitator
type V0ExecutorCapacityUpdate struct {
	FreeExecutors Manifest `wire:"free_executors,via=Manifest"` // executor class → free executors
}

// V1AuthenticationRequest (extension, validator → facilitator) authenticates like
// V0AuthenticationRequest but cannot be replayed: Signature ("0x"-hex sr25519) covers
// V1AuthBlob(PublicKey, Timestamp), and the facilitator takes it only within a minute of
// Timestamp (unix seconds) and once. A facilitator that does not know it answers with an
// error, and the validator falls back to V0AuthenticationRequest on the same connection.
//
//wire:message ValidatorToFacilitator
type V1AuthenticationRequest struct {
	PublicKey string `wire:"public_key"` // hex of the 32-byte hotkey, no 0x
	Timestamp int64  `wire:"timestamp"`
	Signature string `wire:"signature"`
}

// V1AuthBlob is what a V1AuthenticationRequest's signature covers.
func V1AuthBlob(publicKeyHex string, timestamp int64) []byte {
	return []byte("horde-fv-auth:" + publicKeyHex + ":" + strconv.FormatInt(timestamp, 10))
}
