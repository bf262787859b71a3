package protocol

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors wrapped by every *DecodeError (and by Encode errors), so callers
// can classify failures with errors.Is.
var (
	// ErrFrameTooLarge: the frame exceeds the decoder's size limit; nothing was parsed.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrSyntax: the frame is not valid JSON (or not valid UTF-8).
	ErrSyntax = errors.New("invalid JSON")
	// ErrNotObject: the frame is valid JSON but not an object.
	ErrNotObject = errors.New("not a JSON object")
	// ErrMissingMessageType: the object has no message_type key.
	ErrMissingMessageType = errors.New("missing message_type")
	// ErrUnknownMessageType: message_type names no known model.
	ErrUnknownMessageType = errors.New("unknown message_type")
	// ErrWrongUnion: message_type names a known model that the requested union does not accept.
	ErrWrongUnion = errors.New("message_type not accepted on this channel")
	// ErrWrongType: a value has the wrong JSON type (or an integer is out of range).
	ErrWrongType = errors.New("wrong JSON type")
	// ErrMissingField: a required field is absent.
	ErrMissingField = errors.New("missing required field")
	// ErrUnknownEnumValue: a strict enum (or Literal) got a value outside its set.
	ErrUnknownEnumValue = errors.New("unknown enum value")
	// ErrDuplicateKey: an object repeats a key.
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrUnknownField: a model with extra="forbid" got an undeclared key.
	ErrUnknownField = errors.New("unexpected field")
	// ErrInvalidValue: a value has the right type but violates a constraint
	// (empty job_uuid, bad timestamp, bad base64, nested multi_volume, ...).
	ErrInvalidValue = errors.New("invalid value")
	// ErrTooDeep: JSON nesting exceeds the supported depth.
	ErrTooDeep = errors.New("JSON nested too deeply")
)

// DecodeError describes why a frame could not be decoded (or a message encoded).
// Field is the JSON path of the offending value, e.g. "volume.volumes[2].url";
// it is empty for whole-frame problems.
type DecodeError struct {
	Model string // model being decoded, e.g. "V0JobRequest"; empty before dispatch
	Field string // JSON path of the offending value
	Msg   string // human-readable cause
	Err   error  // one of the Err* sentinels
}

// Error formats the error as "protocol: Model: field \"path\": cause".
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("protocol: ")
	if e.Model != "" {
		b.WriteString(e.Model)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString("field ")
		b.WriteString(strconv.Quote(e.Field))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the sentinel error.
func (e *DecodeError) Unwrap() error { return e.Err }

func newErr(kind error, msg string) *DecodeError {
	return &DecodeError{Msg: msg, Err: kind}
}

// inField prefixes the error's field path with name (a key or "[i]").
func inField(err error, name string) error {
	var de *DecodeError
	if !errors.As(err, &de) {
		return err
	}
	switch {
	case de.Field == "":
		de.Field = name
	case de.Field[0] == '[':
		de.Field = name + de.Field
	default:
		de.Field = name + "." + de.Field
	}
	return err
}

func inIndex(err error, i int) error {
	return inField(err, "["+strconv.Itoa(i)+"]")
}

func inModel(err error, model string) error {
	var de *DecodeError
	if errors.As(err, &de) && de.Model == "" {
		de.Model = model
	}
	return err
}
