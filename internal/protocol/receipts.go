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
type JobStartedReceiptPayload struct {
	JobUUID         string
	MinerHotkey     string
	ValidatorHotkey string
	Timestamp       Timestamp
	ExecutorClass   ExecutorClass
	IsOrganic       bool
	TTL             int
}

// JobAcceptedReceiptPayload is issued after the miner accepts a job.
type JobAcceptedReceiptPayload struct {
	JobUUID         string
	MinerHotkey     string
	ValidatorHotkey string
	Timestamp       Timestamp
	TimeAccepted    Timestamp
	TTL             int
}

// JobFinishedReceiptPayload is issued when a job ends (success or failure).
type JobFinishedReceiptPayload struct {
	JobUUID         string
	MinerHotkey     string
	ValidatorHotkey string
	Timestamp       Timestamp
	TimeStarted     Timestamp
	TimeTookUS      int64  // microseconds
	ScoreStr        string // "%.6f"
	BlockNumbers    []int  // allowance blocks paid; nil encodes as []
}

// Receipt is a payload with its signatures, as stored and transferred (one JSON
// line of a receipts page). Both signatures are "0x"-hex sr25519 over
// Payload.BlobForSigning().
type Receipt struct {
	Payload            ReceiptPayload
	ValidatorSignature string
	MinerSignature     *string
}

// MessageType returns "Receipt" (receipts carry no message_type on the wire).
func (Receipt) MessageType() string { return "Receipt" }

// ReceiptType returns the payload's receipt_type.
func (p JobStartedReceiptPayload) ReceiptType() ReceiptType { return ReceiptTypeJobStarted }

// ReceiptType returns the payload's receipt_type.
func (p JobAcceptedReceiptPayload) ReceiptType() ReceiptType { return ReceiptTypeJobAccepted }

// ReceiptType returns the payload's receipt_type.
func (p JobFinishedReceiptPayload) ReceiptType() ReceiptType { return ReceiptTypeJobFinished }

// Header returns the fields common to all receipt payloads.
func (p JobStartedReceiptPayload) Header() ReceiptHeader {
	return ReceiptHeader{p.JobUUID, p.MinerHotkey, p.ValidatorHotkey, p.Timestamp}
}

// Header returns the fields common to all receipt payloads.
func (p JobAcceptedReceiptPayload) Header() ReceiptHeader {
	return ReceiptHeader{p.JobUUID, p.MinerHotkey, p.ValidatorHotkey, p.Timestamp}
}

// Header returns the fields common to all receipt payloads.
func (p JobFinishedReceiptPayload) Header() ReceiptHeader {
	return ReceiptHeader{p.JobUUID, p.MinerHotkey, p.ValidatorHotkey, p.Timestamp}
}

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

func (h ReceiptHeader) pyItems(rt ReceiptType) pyDict {
	return pyDict{
		{"job_uuid", h.JobUUID},
		{"miner_hotkey", h.MinerHotkey},
		{"validator_hotkey", h.ValidatorHotkey},
		{"timestamp", h.Timestamp},
		{"receipt_type", string(rt)},
	}
}

func mustPy(d pyDict) []byte {
	b, err := pyDumps(nil, d)
	if err != nil { // only free-form JSON can fail; receipts have none
		panic(err)
	}
	return b
}

// BlobForSigning returns json.dumps(payload, sort_keys=True) as Python writes it.
func (p JobStartedReceiptPayload) BlobForSigning() []byte {
	return mustPy(append(p.Header().pyItems(ReceiptTypeJobStarted),
		pyItem{"executor_class", string(p.ExecutorClass)},
		pyItem{"is_organic", p.IsOrganic},
		pyItem{"ttl", p.TTL}))
}

// BlobForSigning returns json.dumps(payload, sort_keys=True) as Python writes it.
func (p JobAcceptedReceiptPayload) BlobForSigning() []byte {
	return mustPy(append(p.Header().pyItems(ReceiptTypeJobAccepted),
		pyItem{"time_accepted", p.TimeAccepted},
		pyItem{"ttl", p.TTL}))
}

// BlobForSigning returns json.dumps(payload, sort_keys=True) as Python writes it.
func (p JobFinishedReceiptPayload) BlobForSigning() []byte {
	blocks := p.BlockNumbers
	if blocks == nil {
		blocks = []int{}
	}
	return mustPy(append(p.Header().pyItems(ReceiptTypeJobFinished),
		pyItem{"time_started", p.TimeStarted},
		pyItem{"time_took_us", p.TimeTookUS},
		pyItem{"score_str", p.ScoreStr},
		pyItem{"block_numbers", blocks}))
}

func (h ReceiptHeader) encode(e *encoder, rt ReceiptType) {
	e.raw(`{"job_uuid":`)
	e.str(h.JobUUID)
	e.raw(`,"miner_hotkey":`)
	e.str(h.MinerHotkey)
	e.raw(`,"validator_hotkey":`)
	e.str(h.ValidatorHotkey)
	e.raw(`,"timestamp":`)
	e.timestamp(h.Timestamp)
	e.raw(`,"receipt_type":"`)
	e.raw(string(rt))
	e.byte1('"')
}

func (p JobStartedReceiptPayload) encode(e *encoder) {
	p.Header().encode(e, ReceiptTypeJobStarted)
	e.raw(`,"executor_class":`)
	encodeStrictEnum(e, "executor_class", &executorClassEnum, p.ExecutorClass)
	e.raw(`,"is_organic":`)
	e.boolean(p.IsOrganic)
	e.raw(`,"ttl":`)
	e.int(p.TTL)
	e.byte1('}')
}

func (p JobAcceptedReceiptPayload) encode(e *encoder) {
	p.Header().encode(e, ReceiptTypeJobAccepted)
	e.raw(`,"time_accepted":`)
	e.timestamp(p.TimeAccepted)
	e.raw(`,"ttl":`)
	e.int(p.TTL)
	e.byte1('}')
}

func (p JobFinishedReceiptPayload) encode(e *encoder) {
	p.Header().encode(e, ReceiptTypeJobFinished)
	e.raw(`,"time_started":`)
	e.timestamp(p.TimeStarted)
	e.raw(`,"time_took_us":`)
	e.int64(p.TimeTookUS)
	e.raw(`,"score_str":`)
	e.str(p.ScoreStr)
	e.raw(`,"block_numbers":`)
	e.intList(p.BlockNumbers)
	e.byte1('}')
}

// headerField decodes one of the common fields (bits 0-4, receipt_type at 4).
func (h *ReceiptHeader) field(r *reader, seen *uint64, k []byte, rt ReceiptType) (bool, error) {
	switch string(k) {
	case "job_uuid":
		return true, fID(r, seen, 0, "job_uuid", &h.JobUUID)
	case "miner_hotkey":
		return true, fStr(r, seen, 1, "miner_hotkey", &h.MinerHotkey)
	case "validator_hotkey":
		return true, fStr(r, seen, 2, "validator_hotkey", &h.ValidatorHotkey)
	case "timestamp":
		return true, fTimestamp(r, seen, 3, "timestamp", &h.Timestamp)
	case "receipt_type":
		return true, fLiteral(r, seen, 4, "receipt_type", string(rt))
	}
	return false, nil
}

const headerRequired = 1<<0 | 1<<1 | 1<<2 | 1<<3

var jobStartedFields = []string{"job_uuid", "miner_hotkey", "validator_hotkey", "timestamp",
	"receipt_type", "executor_class", "is_organic", "ttl"}

func (p *JobStartedReceiptPayload) decode(r *reader) error {
	var seen uint64
	var h ReceiptHeader
	err := r.object(func(k []byte) error {
		if ok, err := h.field(r, &seen, k, ReceiptTypeJobStarted); ok {
			return err
		}
		switch string(k) {
		case "executor_class":
			return fEnum(r, &seen, 5, "executor_class", &executorClassEnum, &p.ExecutorClass)
		case "is_organic":
			return fBool(r, &seen, 6, "is_organic", &p.IsOrganic)
		case "ttl":
			return fInt(r, &seen, 7, "ttl", &p.TTL)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	p.JobUUID, p.MinerHotkey, p.ValidatorHotkey, p.Timestamp = h.JobUUID, h.MinerHotkey, h.ValidatorHotkey, h.Timestamp
	return checkRequired(seen, headerRequired|1<<5|1<<6|1<<7, jobStartedFields)
}

var jobAcceptedFields = []string{"job_uuid", "miner_hotkey", "validator_hotkey", "timestamp",
	"receipt_type", "time_accepted", "ttl"}

func (p *JobAcceptedReceiptPayload) decode(r *reader) error {
	var seen uint64
	var h ReceiptHeader
	err := r.object(func(k []byte) error {
		if ok, err := h.field(r, &seen, k, ReceiptTypeJobAccepted); ok {
			return err
		}
		switch string(k) {
		case "time_accepted":
			return fTimestamp(r, &seen, 5, "time_accepted", &p.TimeAccepted)
		case "ttl":
			return fInt(r, &seen, 6, "ttl", &p.TTL)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	p.JobUUID, p.MinerHotkey, p.ValidatorHotkey, p.Timestamp = h.JobUUID, h.MinerHotkey, h.ValidatorHotkey, h.Timestamp
	return checkRequired(seen, headerRequired|1<<5|1<<6, jobAcceptedFields)
}

var jobFinishedFields = []string{"job_uuid", "miner_hotkey", "validator_hotkey", "timestamp",
	"receipt_type", "time_started", "time_took_us", "score_str", "block_numbers"}

func (p *JobFinishedReceiptPayload) decode(r *reader) error {
	var seen uint64
	var h ReceiptHeader
	err := r.object(func(k []byte) error {
		if ok, err := h.field(r, &seen, k, ReceiptTypeJobFinished); ok {
			return err
		}
		switch string(k) {
		case "time_started":
			return fTimestamp(r, &seen, 5, "time_started", &p.TimeStarted)
		case "time_took_us":
			return fInt64(r, &seen, 6, "time_took_us", &p.TimeTookUS)
		case "score_str":
			return fStr(r, &seen, 7, "score_str", &p.ScoreStr)
		case "block_numbers":
			return fIntList(r, &seen, 8, "block_numbers", &p.BlockNumbers)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	if p.BlockNumbers == nil {
		p.BlockNumbers = []int{}
	}
	p.JobUUID, p.MinerHotkey, p.ValidatorHotkey, p.Timestamp = h.JobUUID, h.MinerHotkey, h.ValidatorHotkey, h.Timestamp
	return checkRequired(seen, headerRequired|1<<5|1<<6|1<<7, jobFinishedFields)
}

// decodeReceiptPayload decodes the receipt_type-discriminated payload union.
func decodeReceiptPayload(r *reader) (ReceiptPayload, error) {
	if r.peek() != '{' {
		return nil, r.typeErr("object")
	}
	tag, ok, err := r.peekDiscriminator("receipt_type")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &DecodeError{Field: "receipt_type", Msg: "missing discriminator", Err: ErrMissingField}
	}
	rt, err := receiptTypeEnum.parse(tag)
	if err != nil {
		return nil, inField(err, "receipt_type")
	}
	switch rt {
	case ReceiptTypeJobStarted:
		var p JobStartedReceiptPayload
		err = p.decode(r)
		return p, err
	case ReceiptTypeJobAccepted:
		var p JobAcceptedReceiptPayload
		err = p.decode(r)
		return p, err
	case ReceiptTypeJobFinished:
		var p JobFinishedReceiptPayload
		err = p.decode(r)
		return p, err
	default:
		var p WorkIntervalReceiptPayload
		err = p.decode(r)
		return p, err
	}
}

var receiptFields = []string{"payload", "validator_signature", "miner_signature"}

func (m *Receipt) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "payload":
			if err := mark(&seen, 0, "payload"); err != nil {
				return err
			}
			p, err := decodeReceiptPayload(r)
			if err != nil {
				return inField(err, "payload")
			}
			m.Payload = p
			return nil
		case "validator_signature":
			return fStr(r, &seen, 1, "validator_signature", &m.ValidatorSignature)
		case "miner_signature":
			return fOptStr(r, &seen, 2, "miner_signature", &m.MinerSignature)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<0|1<<1, receiptFields)
}

func (m Receipt) encode(e *encoder) {
	e.raw(`{"payload":`)
	if m.Payload == nil {
		e.fail("payload", "missing receipt payload", ErrMissingField)
		e.null()
	} else {
		m.Payload.encode(e)
	}
	e.raw(`,"validator_signature":`)
	e.str(m.ValidatorSignature)
	e.raw(`,"miner_signature":`)
	e.optStr(m.MinerSignature)
	e.byte1('}')
}
