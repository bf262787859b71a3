package protocol

import (
	"strconv"
	"time"
)

// ReceiptHeader holds the fields every receipt payload has.
type ReceiptHeader struct {
	JobUUID         string
	MinerHotkey     string
	ValidatorHotkey string
	Timestamp       Timestamp // when the receipt was generated
}

// ReceiptPayload is one of JobStartedReceiptPayload, JobAcceptedReceiptPayload,
// JobFinishedReceiptPayload and (horde extension) WorkIntervalReceiptPayload,
// discriminated on the wire by receipt_type. The set is closed.
type ReceiptPayload interface {
	// ReceiptType returns the payload's receipt_type.
	ReceiptType() ReceiptType
	// Header returns the common fields.
	Header() ReceiptHeader
	// BlobForSigning returns the bytes the validator signs and the miner
	// countersigns: Python json.dumps(payload, sort_keys=True).
	BlobForSigning() []byte
	encode(e *encoder)
}

// JobStartedReceiptPayload is issued with V0InitialJobRequest: the executor is
// reserved for TTL seconds.
//
//wire:model receipt
type JobStartedReceiptPayload struct {
	JobUUID         string        `wire:"job_uuid,id"`
	MinerHotkey     string        `wire:"miner_hotkey"`
	ValidatorHotkey string        `wire:"validator_hotkey"`
	Timestamp       Timestamp     `wire:"timestamp"`
	_               struct{}      `wire:"receipt_type,literal=JobStartedReceipt"`
	ExecutorClass   ExecutorClass `wire:"executor_class"`
	IsOrganic       bool          `wire:"is_organic"`
	TTL             int           `wire:"ttl"`
}

// JobAcceptedReceiptPayload is issued after the miner accepts a job.
//
//wire:model receipt
type JobAcceptedReceiptPayload struct {
	JobUUID         string    `wire:"job_uuid,id"`
	MinerHotkey     string    `wire:"miner_hotkey"`
	ValidatorHotkey string    `wire:"validator_hotkey"`
	Timestamp       Timestamp `wire:"timestamp"`
	_               struct{}  `wire:"receipt_type,literal=JobAcceptedReceipt"`
	TimeAccepted    Timestamp `wire:"time_accepted"`
	TTL             int       `wire:"ttl"`
}

// JobFinishedReceiptPayload is issued when a job ends (success or failure).
//
//wire:model receipt
type JobFinishedReceiptPayload struct {
	JobUUID         string    `wire:"job_uuid,id"`
	MinerHotkey     string    `wire:"miner_hotkey"`
	ValidatorHotkey string    `wire:"validator_hotkey"`
	Timestamp       Timestamp `wire:"timestamp"`
	_               struct{}  `wire:"receipt_type,literal=JobFinishedReceipt"`
	TimeStarted     Timestamp `wire:"time_started"`
	TimeTookUS      int64     `wire:"time_took_us"`             // microseconds
	ScoreStr        string    `wire:"score_str"`                // "%.6f"
	BlockNumbers    []int     `wire:"block_numbers,default=[]"` // allowance blocks paid; nil encodes as []
}

// Receipt is a payload with its signatures, as stored and transferred (one JSON
// line of a receipts page). Both signatures are "0x"-hex sr25519 over
// Payload.BlobForSigning().
//
//wire:model
type Receipt struct {
	Payload            ReceiptPayload `wire:"payload,via=ReceiptPayload"`
	ValidatorSignature string         `wire:"validator_signature"`
	MinerSignature     *string        `wire:"miner_signature,optional"`
}

// MessageType returns "Receipt" (receipts carry no message_type on the wire).
func (Receipt) MessageType() string { return "Receipt" }

// Score parses ScoreStr.
func (p JobFinishedReceiptPayload) Score() (float64, error) {
	return strconv.ParseFloat(p.ScoreStr, 64)
}

// TimeTook returns TimeTookUS as a duration.
func (p JobFinishedReceiptPayload) TimeTook() time.Duration {
	return time.Duration(p.TimeTookUS) * time.Microsecond
}

// FormatScore formats a score as upstream's score_str ("%.6f").
func FormatScore(score float64) string { return strconv.FormatFloat(score, 'f', 6, 64) }

func mustPy(d pyDict) []byte {
	b, err := pyDumps(nil, d)
	if err != nil { // only free-form JSON can fail; receipts have none
		panic(err)
	}
	return b
}

// decodeReceiptPayload decodes the receipt_type-discriminated payload union.
func decodeReceiptPayload(r *reader, dst *ReceiptPayload) error {
	rt, err := readTag(r, "receipt_type", &receiptTypeEnum)
	if err != nil {
		return err
	}
	switch rt {
	case ReceiptTypeJobStarted:
		*dst, err = decodePayload[JobStartedReceiptPayload](r)
	case ReceiptTypeJobAccepted:
		*dst, err = decodePayload[JobAcceptedReceiptPayload](r)
	case ReceiptTypeJobFinished:
		*dst, err = decodePayload[JobFinishedReceiptPayload](r)
	default:
		*dst, err = decodePayload[WorkIntervalReceiptPayload](r)
	}
	return err
}

func decodePayload[T any, PT interface {
	*T
	codecTarget
}](r *reader) (T, error) {
	var p T
	err := PT(&p).decode(r)
	return p, err
}

func encodeReceiptPayload(e *encoder, p ReceiptPayload) {
	if p == nil {
		e.fail("payload", "missing receipt payload", ErrMissingField)
		e.null()
		return
	}
	p.encode(e)
}
