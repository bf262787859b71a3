package protocol

import (
	"fmt"
	"strconv"
	"sync"
)

// Message is implemented by every wire message. MessageType returns the
// message_type discriminator (the upstream model name).
type Message interface {
	MessageType() string
}

// MaxFrameSize is the default frame size limit (upstream's websocket max_size).
const MaxFrameSize = 50 << 20

// Union is a set of message types accepted on one channel direction (upstream's
// discriminated unions). Unions can be or-ed together.
type Union uint8

// The channel unions. FacilitatorToValidator and ValidatorToFacilitator have no
// upstream union type; they hold the fv_protocol messages of each direction.
const (
	UnionValidatorToMiner Union = 1 << iota
	UnionMinerToValidator
	UnionMinerToExecutor
	UnionExecutorToMiner
	UnionFacilitatorToValidator
	UnionValidatorToFacilitator

	// UnionAll accepts every known message type.
	UnionAll = UnionValidatorToMiner | UnionMinerToValidator | UnionMinerToExecutor |
		UnionExecutorToMiner | UnionFacilitatorToValidator | UnionValidatorToFacilitator
)

var unionNames = [...]string{
	"ValidatorToMinerMessage", "MinerToValidatorMessage", "MinerToExecutorMessage",
	"ExecutorToMinerMessage", "FacilitatorToValidatorMessage", "ValidatorToFacilitatorMessage",
}

// String returns upstream's union name, e.g. "ValidatorToMinerMessage".
func (u Union) String() string {
	s := ""
	for i, n := range unionNames {
		if u&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += n
		}
	}
	if s == "" {
		return "Union(" + strconv.Itoa(int(u)) + ")"
	}
	return s
}

// Accepts reports whether messageType is a member of u.
func (u Union) Accepts(messageType string) bool {
	spec, ok := registry[messageType]
	return ok && spec.unions&u != 0
}

type msgSpec struct {
	unions Union
	decode func(r *reader) (Message, error)
}

func decoderFor[T any, PT interface {
	*T
	codecTarget
	Message
}]() func(*reader) (Message, error) {
	return func(r *reader) (Message, error) {
		m := PT(new(T))
		if err := m.decode(r); err != nil {
			return nil, err
		}
		return m, nil
	}
}

// JobUUIDOf returns the UUID of the job m is about, for the messages that name one (the
// field tagged `job`: job_uuid, or uuid in the facilitator's messages).
func JobUUIDOf(m Message) (string, bool) {
	j, ok := m.(interface{ jobUUID() string })
	if !ok {
		return "", false
	}
	return j.jobUUID(), true
}

// MessageTypes returns every known message_type accepted by u.
func MessageTypes(u Union) []string {
	var out []string
	for name, spec := range registry {
		if spec.unions&u != 0 {
			out = append(out, name)
		}
	}
	return out
}

// Decoder decodes frames with a size limit. The zero value uses MaxFrameSize.
// Decoded messages are pointers (*V0JobRequest, ...).
type Decoder struct {
	// MaxFrameSize is the largest accepted frame in bytes; 0 means MaxFrameSize.
	MaxFrameSize int
}

func (d Decoder) checkSize(data []byte) error {
	limit := d.MaxFrameSize
	if limit <= 0 {
		limit = MaxFrameSize
	}
	if len(data) > limit {
		return &DecodeError{Msg: "frame of " + strconv.Itoa(len(data)) + " bytes exceeds the limit of " +
			strconv.Itoa(limit) + " bytes", Err: ErrFrameTooLarge}
	}
	return nil
}

// notObject explains why a frame is not a JSON object.
func notObject(r *reader) error {
	start := r.i
	if err := r.skipValue(); err != nil {
		return err
	}
	if err := r.end(); err != nil {
		return err
	}
	r.i = start
	return newErr(ErrNotObject, "expected a JSON object, got "+r.kind())
}

// Decode decodes one frame as a member of union u. A frame without
// message_type is decoded as a Response when u includes
// UnionFacilitatorToValidator (the facilitator's Response has no
// discriminator).
func (d Decoder) Decode(u Union, data []byte) (Message, error) {
	if err := d.checkSize(data); err != nil {
		return nil, err
	}
	r := newReader(data)
	if r.peek() != '{' {
		return nil, notObject(&r)
	}
	mt, found, err := r.peekDiscriminator("message_type")
	if err != nil {
		return nil, err
	}
	if !found {
		if u&UnionFacilitatorToValidator != 0 {
			m := new(Response)
			err := m.decode(&r)
			if err == nil {
				err = r.end()
			}
			if err != nil {
				return nil, inModel(err, "Response")
			}
			return m, nil
		}
		return nil, &DecodeError{Field: "message_type", Msg: "missing message_type", Err: ErrMissingMessageType}
	}
	spec, ok := registry[mt]
	if !ok {
		return nil, &DecodeError{Field: "message_type", Msg: "unknown message_type " + strconv.Quote(mt),
			Err: ErrUnknownMessageType}
	}
	if spec.unions&u == 0 {
		return nil, &DecodeError{Field: "message_type", Msg: "message_type " + strconv.Quote(mt) +
			" is not accepted by " + u.String(), Err: ErrWrongUnion}
	}
	m, err := spec.decode(&r)
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return nil, inModel(err, mt)
	}
	return m, nil
}

// DecodeReceipt decodes one receipt (one line of a receipts page).
func (d Decoder) DecodeReceipt(data []byte) (Receipt, error) {
	var m Receipt
	err := d.decodeModel(data, "Receipt", &m)
	return m, err
}

// DecodeResponse decodes the facilitator's Response.
func (d Decoder) DecodeResponse(data []byte) (Response, error) {
	var m Response
	err := d.decodeModel(data, "Response", &m)
	return m, err
}

func (d Decoder) decodeModel(data []byte, model string, m codecTarget) error {
	if err := d.checkSize(data); err != nil {
		return err
	}
	r := newReader(data)
	if r.peek() != '{' {
		return inModel(notObject(&r), model)
	}
	err := m.decode(&r)
	if err == nil {
		err = r.end()
	}
	return inModel(err, model)
}

// DecodeReceipt decodes one receipt line (MaxFrameSize limit).
func DecodeReceipt(data []byte) (Receipt, error) { return Decoder{}.DecodeReceipt(data) }

// DecodeResponse decodes a facilitator Response (MaxFrameSize limit).
func DecodeResponse(data []byte) (Response, error) { return Decoder{}.DecodeResponse(data) }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Encode returns m as upstream's model_dump_json() bytes. m may be a message
// value or a pointer to one (including Receipt and Response). Invalid values
// (an unknown strict enum value, a Volume with no member set, ...) are errors.
func Encode(m Message) ([]byte, error) {
	bp := bufPool.Get().(*[]byte)
	b, err := AppendEncode((*bp)[:0], m)
	var out []byte
	if err == nil {
		out = make([]byte, len(b))
		copy(out, b)
	}
	if cap(b) <= 1<<20 {
		*bp = b
		bufPool.Put(bp)
	}
	return out, err
}

// AppendEncode appends the encoding of m to dst.
func AppendEncode(dst []byte, m Message) (out []byte, err error) {
	v, ok := m.(codecValue)
	if !ok || m == nil {
		return dst, fmt.Errorf("protocol: encode: unsupported message type %T", m)
	}
	defer func() {
		if p := recover(); p != nil { // a nil *T message
			out, err = dst, fmt.Errorf("protocol: encode %T: %v", m, p)
		}
	}()
	e := encoder{b: dst}
	v.encode(&e)
	if e.err != nil {
		return dst, fmt.Errorf("%w (in %s)", e.err, m.MessageType())
	}
	return e.b, nil
}

func marshalModel(v codecValue) ([]byte, error) {
	e := encoder{}
	v.encode(&e)
	return e.b, e.err
}

// unmarshalInto decodes data into a fresh T and stores it in dst only on success, so a
// failed UnmarshalJSON leaves dst as it was.
func unmarshalInto[T any, PT interface {
	*T
	codecTarget
}](data []byte, model string, dst PT) error {
	var v T
	if err := unmarshalModel(data, model, PT(&v)); err != nil {
		return err
	}
	*dst = v
	return nil
}

func unmarshalModel(data []byte, model string, m codecTarget) error {
	r := reader{data: data}
	err := m.decode(&r)
	if err == nil {
		err = r.end()
	}
	return inModel(err, model)
}

// Decode decodes a frame as a member of union u (MaxFrameSize limit).
func Decode(u Union, data []byte) (Message, error) { return Decoder{}.Decode(u, data) }
