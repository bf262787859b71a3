package protocol

// horde's protocol extensions, in upstream style. Upstream peers do not know
// these message types or values; they reject the frames and carry on.

// WorkIntervalReceiptPayload (extension, receipt_type "WorkInterval") proves
// WorkedSeconds of execution of a job in one 10-minute accounting interval. The
// validator signs BlobForSigning() (sorted-keys Python JSON, like upstream's
// receipts) and the miner countersigns it; the miner serves the Receipt in its
// receipt pages like the other types. One receipt per completed interval, plus a
// final partial one when a job ends normally.
type WorkIntervalReceiptPayload struct {
	JobUUID         string
	MinerHotkey     string
	ValidatorHotkey string
	Timestamp       Timestamp
	ExecutorClass   ExecutorClass
	IntervalIndex   int       // 0-based index of the interval within the job
	IntervalStart   Timestamp // start of the interval
	IntervalEnd     Timestamp // end of the interval (or of the job, for the final one)
	WorkedSeconds   int       // whole seconds of execution within [IntervalStart, IntervalEnd]
}

// V0WorkIntervalReceiptRequest (extension, validator → miner) hands the miner a
// work-interval receipt to verify, countersign and store. Signature is "0x"-hex
// sr25519 by the validator over Payload.BlobForSigning().
type V0WorkIntervalReceiptRequest struct {
	Payload   WorkIntervalReceiptPayload
	Signature string
}

// ClassValue is one executor class's value as a validator currently rates it.
type ClassValue struct {
	RelativeValue float64 // the class's relative value in the hardware class registry
	Multiplier    float64 // the current demand multiplier (smoothed, bounded)
}

// V0ClassValuesMessage (extension, validator → miner, after authentication and
// whenever the values change) publishes the validator's per-class values and its
// reward rate, so a miner can tell which classes are profitable. A class earns
// RewardRate × RelativeValue × Multiplier per executor-hour (see RewardPerHour).
type V0ClassValuesMessage struct {
	ClassValues OrderedMap[ClassValue] // executor class → value; keys are ExecutorClass values
	RewardRate  float64                // reward (alpha) per executor-hour of value 1.0
}

// ReceiptType returns the payload's receipt_type.
func (p WorkIntervalReceiptPayload) ReceiptType() ReceiptType { return ReceiptTypeWorkInterval }

// Header returns the fields common to all receipt payloads.
func (p WorkIntervalReceiptPayload) Header() ReceiptHeader {
	return ReceiptHeader{p.JobUUID, p.MinerHotkey, p.ValidatorHotkey, p.Timestamp}
}

// BlobForSigning returns json.dumps(payload, sort_keys=True) in Python's form.
func (p WorkIntervalReceiptPayload) BlobForSigning() []byte {
	return mustPy(append(p.Header().pyItems(ReceiptTypeWorkInterval),
		pyItem{"executor_class", string(p.ExecutorClass)},
		pyItem{"interval_index", p.IntervalIndex},
		pyItem{"interval_start", p.IntervalStart},
		pyItem{"interval_end", p.IntervalEnd},
		pyItem{"worked_seconds", p.WorkedSeconds}))
}

func (p WorkIntervalReceiptPayload) encode(e *encoder) {
	p.Header().encode(e, ReceiptTypeWorkInterval)
	e.raw(`,"executor_class":`)
	encodeStrictEnum(e, "executor_class", &executorClassEnum, p.ExecutorClass)
	e.raw(`,"interval_index":`)
	e.int(p.IntervalIndex)
	e.raw(`,"interval_start":`)
	e.timestamp(p.IntervalStart)
	e.raw(`,"interval_end":`)
	e.timestamp(p.IntervalEnd)
	e.raw(`,"worked_seconds":`)
	e.int(p.WorkedSeconds)
	e.byte1('}')
}

var workIntervalFields = []string{"job_uuid", "miner_hotkey", "validator_hotkey", "timestamp",
	"receipt_type", "executor_class", "interval_index", "interval_start", "interval_end", "worked_seconds"}

func (p *WorkIntervalReceiptPayload) decode(r *reader) error {
	var seen uint64
	var h ReceiptHeader
	err := r.object(func(k []byte) error {
		if ok, err := h.field(r, &seen, k, ReceiptTypeWorkInterval); ok {
			return err
		}
		switch string(k) {
		case "executor_class":
			return fEnum(r, &seen, 5, "executor_class", &executorClassEnum, &p.ExecutorClass)
		case "interval_index":
			return fInt(r, &seen, 6, "interval_index", &p.IntervalIndex)
		case "interval_start":
			return fTimestamp(r, &seen, 7, "interval_start", &p.IntervalStart)
		case "interval_end":
			return fTimestamp(r, &seen, 8, "interval_end", &p.IntervalEnd)
		case "worked_seconds":
			return fInt(r, &seen, 9, "worked_seconds", &p.WorkedSeconds)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	p.JobUUID, p.MinerHotkey, p.ValidatorHotkey, p.Timestamp = h.JobUUID, h.MinerHotkey, h.ValidatorHotkey, h.Timestamp
	return checkRequired(seen, headerRequired|1<<5|1<<6|1<<7|1<<8|1<<9, workIntervalFields)
}

// MessageType returns "V0WorkIntervalReceiptRequest".
func (V0WorkIntervalReceiptRequest) MessageType() string { return "V0WorkIntervalReceiptRequest" }

// BlobForSigning returns the receipt payload's blob.
func (m V0WorkIntervalReceiptRequest) BlobForSigning() []byte { return m.Payload.BlobForSigning() }

func (m *V0WorkIntervalReceiptRequest) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0WorkIntervalReceiptRequest")
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

func (m V0WorkIntervalReceiptRequest) encode(e *encoder) {
	e.raw(`{"message_type":"V0WorkIntervalReceiptRequest","payload":`)
	m.Payload.encode(e)
	e.raw(`,"signature":`)
	e.str(m.Signature)
	e.byte1('}')
}

// MessageType returns "V0ClassValuesMessage".
func (V0ClassValuesMessage) MessageType() string { return "V0ClassValuesMessage" }

// RewardPerHour returns RewardRate × RelativeValue × Multiplier for class.
func (m V0ClassValuesMessage) RewardPerHour(class ExecutorClass) (float64, bool) {
	v, ok := m.ClassValues.Get(string(class))
	if !ok {
		return 0, false
	}
	return m.RewardRate * v.RelativeValue * v.Multiplier, true
}

var classValueFields = []string{"relative_value", "multiplier"}

func (v *ClassValue) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "relative_value":
			return fFloat(r, &seen, 0, "relative_value", &v.RelativeValue)
		case "multiplier":
			return fFloat(r, &seen, 1, "multiplier", &v.Multiplier)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b11, classValueFields)
}

func (v ClassValue) encode(e *encoder) {
	e.raw(`{"relative_value":`)
	e.float("relative_value", v.RelativeValue)
	e.raw(`,"multiplier":`)
	e.float("multiplier", v.Multiplier)
	e.byte1('}')
}

var classValuesFields = []string{"message_type", "class_values", "reward_rate"}

func (m *V0ClassValuesMessage) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "message_type":
			return fLiteral(r, &seen, 0, "message_type", "V0ClassValuesMessage")
		case "class_values":
			if err := mark(&seen, 1, "class_values"); err != nil {
				return err
			}
			err := decodeOrderedMap(r, &m.ClassValues, func(r *reader) (ClassValue, error) {
				var v ClassValue
				err := v.decode(r)
				return v, err
			})
			if err == nil {
				err = checkClassKeys(m.ClassValues)
			}
			return inField(err, "class_values")
		case "reward_rate":
			return fFloat(r, &seen, 2, "reward_rate", &m.RewardRate)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 0b110, classValuesFields)
}

func (m V0ClassValuesMessage) encode(e *encoder) {
	e.raw(`{"message_type":"V0ClassValuesMessage","class_values":`)
	if err := checkClassKeys(m.ClassValues); err != nil {
		e.fail("class_values", err.Error(), ErrUnknownEnumValue)
	}
	encodeOrderedMap(e, m.ClassValues, func(e *encoder, v ClassValue) { v.encode(e) })
	e.raw(`,"reward_rate":`)
	e.float("reward_rate", m.RewardRate)
	e.byte1('}')
}
