package protocol

import (
	"strconv"
	"time"
)

// Timestamp is a datetime as pydantic serialises it: microsecond precision,
// "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (six fraction digits, only when microseconds are
// non-zero). Receipt payloads use it, and the exact text is part of the signed
// blob, so always build timestamps with NewTimestamp (UTC, truncated to µs).
//
// Decoding accepts RFC 3339 text with 'T', 't' or ' ' between date and time, any
// number of fraction digits (truncated to six) and a 'Z' or ±HH:MM offset; a
// non-zero offset is preserved and re-emitted as +HH:MM like pydantic does, so a
// peer's signature over such a receipt still verifies. Naive times are rejected.
type Timestamp struct {
	time.Time
}

// NewTimestamp returns t in UTC truncated to microseconds.
func NewTimestamp(t time.Time) Timestamp {
	return Timestamp{t.UTC().Truncate(time.Microsecond)}
}

// String returns the pydantic JSON form (without quotes).
func (t Timestamp) String() string { return string(t.appendText(nil)) }

func (t Timestamp) appendText(b []byte) []byte {
	tt := t.Time
	y, mo, d := tt.Date()
	h, mi, s := tt.Clock()
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, int(mo), 2)
	b = append(b, '-')
	b = appendPad(b, d, 2)
	b = append(b, 'T')
	b = appendPad(b, h, 2)
	b = append(b, ':')
	b = appendPad(b, mi, 2)
	b = append(b, ':')
	b = appendPad(b, s, 2)
	if us := tt.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		b = appendPad(b, us, 6)
	}
	_, off := tt.Zone()
	if off == 0 {
		return append(b, 'Z')
	}
	sign := byte('+')
	if off < 0 {
		sign = '-'
		off = -off
	}
	b = append(b, sign)
	b = appendPad(b, off/3600, 2)
	b = append(b, ':')
	b = appendPad(b, off/60%60, 2)
	if off%60 != 0 {
		b = append(b, ':')
		b = appendPad(b, off%60, 2)
	}
	return b
}

func appendPad(b []byte, v, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// MarshalJSON returns the quoted pydantic form.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	b := append([]byte{'"'}, t.appendText(nil)...)
	return append(b, '"'), nil
}

// UnmarshalJSON parses a quoted datetime (see Timestamp).
func (t *Timestamp) UnmarshalJSON(data []byte) error {
	r := reader{data: data}
	s, err := r.readString()
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return err
	}
	v, err := ParseTimestamp(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ParseTimestamp parses the text forms described on Timestamp.
func ParseTimestamp(s string) (Timestamp, error) {
	bad := func(why string) (Timestamp, error) {
		return Timestamp{}, newErr(ErrInvalidValue, "invalid datetime "+strconv.Quote(s)+": "+why)
	}
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	if len(s) < 19 {
		return bad("expected YYYY-MM-DDTHH:MM:SS")
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' {
		return bad("expected YYYY-MM-DD")
	}
	if s[10] != 'T' && s[10] != 't' && s[10] != ' ' {
		return bad("expected a time after the date")
	}
	h, ok1 := num(11, 2)
	mi, ok2 := num(14, 2)
	sec, ok3 := num(17, 2)
	if !ok1 || !ok2 || !ok3 || s[13] != ':' || s[16] != ':' {
		return bad("expected HH:MM:SS")
	}
	i := 19
	ns := 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 6 {
				ns = ns*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return bad("empty fraction")
		}
		for n := min(i-start, 6); n < 6; n++ {
			ns *= 10
		}
		ns *= 1000
	}
	var loc *time.Location
	switch {
	case i == len(s):
		return bad("missing timezone (use Z for UTC)")
	case (s[i] == 'Z' || s[i] == 'z') && i+1 == len(s):
		loc = time.UTC
	case (s[i] == '+' || s[i] == '-') && i+6 == len(s) && s[i+3] == ':':
		oh, ok1 := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return bad("invalid UTC offset")
		}
		off := oh*3600 + om*60
		if s[i] == '-' {
			off = -off
		}
		if off == 0 {
			loc = time.UTC
		} else {
			loc = time.FixedZone("", off)
		}
	default:
		return bad("invalid timezone")
	}
	if mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 || y < 1 {
		return bad("field out of range")
	}
	tt := time.Date(y, time.Month(mo), d, h, mi, sec, ns, loc)
	if tt.Day() != d {
		return bad("day out of range")
	}
	return Timestamp{tt}, nil
}

func (r *reader) readTimestamp() (Timestamp, error) {
	s, err := r.readString()
	if err != nil {
		return Timestamp{}, err
	}
	return ParseTimestamp(s)
}

func (e *encoder) timestamp(t Timestamp) {
	e.byte1('"')
	e.b = t.appendText(e.b)
	e.byte1('"')
}
