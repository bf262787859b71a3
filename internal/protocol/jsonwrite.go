package protocol

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// pydSafe[c] is true for ASCII bytes that pydantic (serde_json) writes unescaped.
var pydSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendPydString appends s as pydantic's model_dump_json writes strings: only
// '"', '\\' and control characters are escaped (\b \t \n \f \r short, the rest as
// \u00XX); non-ASCII is raw UTF-8. Invalid UTF-8 is replaced by U+FFFD.
func appendPydString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if pydSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendPyString appends s as Python's json.dumps (ensure_ascii=True) writes it:
// printable ASCII except '"' and '\\' is literal, \b \f \n \r \t are short escapes,
// everything else is \uXXXX (lowercase hex, astral characters as surrogate pairs).
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s { // invalid UTF-8 decodes as U+FFFD
		switch {
		case r == '"':
			b = append(b, '\\', '"')
		case r == '\\':
			b = append(b, '\\', '\\')
		case r >= 0x20 && r <= 0x7e:
			b = append(b, byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r > 0xFFFF:
			r -= 0x10000
			b = appendU4(b, 0xD800+(r>>10))
			b = appendU4(b, 0xDC00+(r&0x3FF))
		default:
			b = appendU4(b, r)
		}
	}
	return append(b, '"')
}

func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}

// shortestDigits returns the shortest round-trip decimal digits of |f| and the
// decimal point position: |f| = 0.d1d2d3... × 10^decpt.
func shortestDigits(f float64) (digits []byte, decpt int) {
	var tmp [32]byte
	s := strconv.AppendFloat(tmp[:0], math.Abs(f), 'e', -1, 64) // d.ddde±XX
	e := 0
	for i, c := range s {
		if c == 'e' {
			exp, _ := strconv.Atoi(string(s[i+1:]))
			e = exp
			s = s[:i]
			break
		}
	}
	digits = make([]byte, 0, len(s))
	for _, c := range s {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	return digits, e + 1
}

// appendPydFloat formats a finite float as pydantic's model_dump_json does (Rust
// ryu): "3500.0", "0.001", "1e16", "1.5e-7".
func appendPydFloat(b []byte, f float64) []byte {
	if math.Signbit(f) {
		b = append(b, '-')
	}
	if f == 0 {
		return append(b, "0.0"...)
	}
	d, kk := shortestDigits(f)
	n := len(d)
	k := kk - n
	switch {
	case k >= 0 && kk <= 16:
		b = append(b, d...)
		for i := 0; i < k; i++ {
			b = append(b, '0')
		}
		return append(b, '.', '0')
	case kk > 0 && kk <= 16:
		b = append(b, d[:kk]...)
		b = append(b, '.')
		return append(b, d[kk:]...)
	case kk > -5 && kk <= 0:
		b = append(b, '0', '.')
		for i := 0; i < -kk; i++ {
			b = append(b, '0')
		}
		return append(b, d...)
	default:
		b = append(b, d[0])
		if n > 1 {
			b = append(b, '.')
			b = append(b, d[1:]...)
		}
		b = append(b, 'e')
		return strconv.AppendInt(b, int64(kk-1), 10)
	}
}

// appendPyFloat formats a finite float as Python's repr() does: "3500.0",
// "0.0001", "1e-05", "1e+16", "1.5e+16".
func appendPyFloat(b []byte, f float64) []byte {
	if math.Signbit(f) {
		b = append(b, '-')
	}
	if f == 0 {
		return append(b, "0.0"...)
	}
	d, decpt := shortestDigits(f)
	n := len(d)
	if decpt <= -4 || decpt > 16 {
		b = append(b, d[0])
		if n > 1 {
			b = append(b, '.')
			b = append(b, d[1:]...)
		}
		b = append(b, 'e')
		exp := decpt - 1
		if exp < 0 {
			b = append(b, '-')
			exp = -exp
		} else {
			b = append(b, '+')
		}
		if exp < 10 {
			b = append(b, '0')
		}
		return strconv.AppendInt(b, int64(exp), 10)
	}
	switch {
	case decpt <= 0:
		b = append(b, '0', '.')
		for i := 0; i < -decpt; i++ {
			b = append(b, '0')
		}
		return append(b, d...)
	case decpt >= n:
		b = append(b, d...)
		for i := n; i < decpt; i++ {
			b = append(b, '0')
		}
		return append(b, '.', '0')
	default:
		b = append(b, d[:decpt]...)
		b = append(b, '.')
		return append(b, d[decpt:]...)
	}
}

// encoder appends pydantic-compatible JSON to b and records the first error.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) fail(field, msg string, kind error) {
	if e.err == nil {
		e.err = fmt.Errorf("protocol: encode: field %q: %s: %w", field, msg, kind)
	}
}

func (e *encoder) raw(s string)  { e.b = append(e.b, s...) }
func (e *encoder) byte1(c byte)  { e.b = append(e.b, c) }
func (e *encoder) str(s string)  { e.b = appendPydString(e.b, s) }
func (e *encoder) int(v int)     { e.b = strconv.AppendInt(e.b, int64(v), 10) }
func (e *encoder) int64(v int64) { e.b = strconv.AppendInt(e.b, v, 10) }
func (e *encoder) null()         { e.b = append(e.b, "null"...) }

func (e *encoder) boolean(v bool) {
	if v {
		e.b = append(e.b, "true"...)
	} else {
		e.b = append(e.b, "false"...)
	}
}

func (e *encoder) optStr(p *string) {
	if p == nil {
		e.null()
		return
	}
	e.str(*p)
}

func (e *encoder) optInt(p *int) {
	if p == nil {
		e.null()
		return
	}
	e.int(*p)
}

func (e *encoder) float(field string, f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		e.fail(field, "non-finite number", ErrInvalidValue)
		e.null()
		return
	}
	e.b = appendPydFloat(e.b, f)
}

func (e *encoder) strList(l []string) {
	e.byte1('[')
	for i, s := range l {
		if i > 0 {
			e.byte1(',')
		}
		e.str(s)
	}
	e.byte1(']')
}

func (e *encoder) intList(l []int) {
	e.byte1('[')
	for i, v := range l {
		if i > 0 {
			e.byte1(',')
		}
		e.int(v)
	}
	e.byte1(']')
}

// rawJSON appends free-form JSON in canonical form; nil (or "null") is null.
func (e *encoder) rawJSON(field string, raw json.RawMessage, kind rawKind) {
	if isNullRaw(raw) {
		e.null()
		return
	}
	r := reader{data: raw}
	if kind == rawObject && r.peek() != '{' {
		e.fail(field, "expected a JSON object", ErrWrongType)
		e.null()
		return
	}
	b, err := r.appendCanonical(e.b)
	if err == nil {
		err = r.end()
	}
	if err != nil {
		e.fail(field, "invalid JSON: "+err.Error(), ErrSyntax)
		e.null()
		return
	}
	e.b = b
}

// rawObjectOrEmpty appends a free-form JSON object that may not be null: nil is written as {}.
func (e *encoder) rawObjectOrEmpty(field string, raw json.RawMessage) {
	if raw == nil {
		e.raw("{}")
		return
	}
	e.rawJSON(field, raw, rawObject)
}

// encodeOpt writes a nullable nested model.
func encodeOpt[T codecValue](e *encoder, v *T) {
	if v == nil {
		e.null()
		return
	}
	(*v).encode(e)
}

// encodeList writes a list of nested models.
func encodeList[T codecValue](e *encoder, list []T) {
	e.byte1('[')
	for i := range list {
		if i > 0 {
			e.byte1(',')
		}
		list[i].encode(e)
	}
	e.byte1(']')
}

func isNullRaw(raw json.RawMessage) bool {
	if raw == nil {
		return true
	}
	r := reader{data: raw}
	return r.tryNull() && r.end() == nil
}
