package protocol

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds JSON nesting so hostile frames cannot exhaust the stack.
const maxDepth = 512

// shareLimit: frames up to this size are converted to one string once and decoded
// strings are substrings of it (no per-field allocation). Larger frames copy each
// string so a small retained field never pins a huge frame.
const shareLimit = 64 << 10

// reader is a strict, allocation-light JSON scanner over one frame.
type reader struct {
	data  []byte
	s     string // string(data) when len(data) <= shareLimit, else ""
	i     int
	depth int
}

func newReader(data []byte) reader {
	r := reader{data: data}
	if len(data) <= shareLimit {
		r.s = string(data)
	}
	return r
}

func (r *reader) sub(start, end int) string {
	if r.s != "" {
		return r.s[start:end]
	}
	return string(r.data[start:end])
}

func (r *reader) skipWS() {
	for r.i < len(r.data) {
		switch r.data[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next non-whitespace byte, or 0 at end of input.
func (r *reader) peek() byte {
	r.skipWS()
	if r.i >= len(r.data) {
		return 0
	}
	return r.data[r.i]
}

func (r *reader) syntaxErr(msg string) error {
	if r.i >= len(r.data) {
		return newErr(ErrSyntax, "invalid JSON: unexpected end of input")
	}
	return newErr(ErrSyntax, "invalid JSON at offset "+strconv.Itoa(r.i)+": "+msg)
}

// kind names the JSON type of the next value, for error messages.
func (r *reader) kind() string {
	lit := func(s, kind string) string {
		if len(r.data)-r.i >= len(s) && string(r.data[r.i:r.i+len(s)]) == s {
			return kind
		}
		return "invalid JSON"
	}
	switch r.peek() {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't':
		return lit("true", "boolean")
	case 'f':
		return lit("false", "boolean")
	case 'n':
		return lit("null", "null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	case 0:
		return "end of input"
	}
	return "invalid JSON"
}

// typeErr reports that the next value is not of the wanted type. A syntactically
// broken value is reported as a syntax error instead.
func (r *reader) typeErr(want string) error {
	k := r.kind()
	if k == "invalid JSON" || k == "end of input" {
		return r.syntaxErr("expected " + want)
	}
	return newErr(ErrWrongType, "expected "+want+", got "+k)
}

// end checks that only whitespace follows the top-level value.
func (r *reader) end() error {
	r.skipWS()
	if r.i != len(r.data) {
		return r.syntaxErr("unexpected data after JSON value")
	}
	return nil
}

// tryNull consumes a null literal if one is next.
func (r *reader) tryNull() bool {
	r.skipWS()
	if len(r.data)-r.i >= 4 && string(r.data[r.i:r.i+4]) == "null" {
		r.i += 4
		return true
	}
	return false
}

// beginObject consumes '{'.
func (r *reader) beginObject() error {
	if r.peek() != '{' {
		return r.typeErr("object")
	}
	r.depth++
	if r.depth > maxDepth {
		return newErr(ErrTooDeep, "JSON nested more than "+strconv.Itoa(maxDepth)+" levels")
	}
	r.i++
	return nil
}

// nextKey reads the next member key of an object opened by beginObject; ok is
// false when the object ends. The returned bytes may alias the input.
func (r *reader) nextKey(first bool) (key []byte, ok bool, err error) {
	c := r.peek()
	if c == '}' {
		r.i++
		r.depth--
		return nil, false, nil
	}
	if !first {
		if c != ',' {
			return nil, false, r.syntaxErr("expected ',' or '}' in object")
		}
		r.i++
		c = r.peek()
	}
	if c != '"' {
		return nil, false, r.syntaxErr("expected string key in object")
	}
	key, err = r.readKey()
	if err != nil {
		return nil, false, err
	}
	if r.peek() != ':' {
		return nil, false, r.syntaxErr("expected ':' after object key")
	}
	r.i++
	return key, true, nil
}

// object iterates an object's members, calling fn with each key positioned at the value.
// fn must consume the value.
func (r *reader) object(fn func(key []byte) error) error {
	if err := r.beginObject(); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, ok, err := r.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := fn(key); err != nil {
			return err
		}
	}
}

// array iterates an array's elements; fn must consume each element.
func (r *reader) array(fn func(i int) error) error {
	if r.peek() != '[' {
		return r.typeErr("array")
	}
	r.depth++
	if r.depth > maxDepth {
		return newErr(ErrTooDeep, "JSON nested more than "+strconv.Itoa(maxDepth)+" levels")
	}
	r.i++
	for n := 0; ; n++ {
		c := r.peek()
		if c == ']' {
			r.i++
			r.depth--
			return nil
		}
		if n > 0 {
			if c != ',' {
				return r.syntaxErr("expected ',' or ']' in array")
			}
			r.i++
		}
		if err := fn(n); err != nil {
			return inIndex(err, n)
		}
	}
}

// readKey reads a string at r.i (which must be '"') and returns its decoded bytes,
// aliasing the input when the key has no escapes.
func (r *reader) readKey() ([]byte, error) {
	start := r.i + 1
	nonASCII := false
	for i := start; i < len(r.data); i++ {
		c := r.data[i]
		switch {
		case c == '"':
			if nonASCII && !utf8.Valid(r.data[start:i]) {
				r.i = start
				return nil, r.syntaxErr("invalid UTF-8 in string")
			}
			r.i = i + 1
			return r.data[start:i], nil
		case c == '\\':
			b, err := r.readEscaped(start, i, nil)
			return b, err
		case c < 0x20:
			r.i = i
			return nil, r.syntaxErr("control character in string")
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
	}
	r.i = len(r.data)
	return nil, r.syntaxErr("unterminated string")
}

// readString reads a JSON string value.
func (r *reader) readString() (string, error) {
	if r.peek() != '"' {
		return "", r.typeErr("string")
	}
	start := r.i + 1
	nonASCII := false
	for i := start; i < len(r.data); i++ {
		c := r.data[i]
		switch {
		case c == '"':
			if nonASCII && !utf8.Valid(r.data[start:i]) {
				r.i = start
				return "", r.syntaxErr("invalid UTF-8 in string")
			}
			r.i = i + 1
			return r.sub(start, i), nil
		case c == '\\':
			b, err := r.readEscaped(start, i, nil)
			return string(b), err
		case c < 0x20:
			r.i = i
			return "", r.syntaxErr("control character in string")
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
	}
	r.i = len(r.data)
	return "", r.syntaxErr("unterminated string")
}

// readEscaped decodes a string that contains escapes; start is the first content
// byte and i the first backslash. The result is appended to buf.
func (r *reader) readEscaped(start, i int, buf []byte) ([]byte, error) {
	seg := r.data[start:i]
	if !utf8.Valid(seg) {
		r.i = start
		return nil, r.syntaxErr("invalid UTF-8 in string")
	}
	buf = append(buf, seg...)
	segStart := -1
	for i < len(r.data) {
		c := r.data[i]
		switch {
		case c == '"':
			if segStart >= 0 {
				if !utf8.Valid(r.data[segStart:i]) {
					r.i = segStart
					return nil, r.syntaxErr("invalid UTF-8 in string")
				}
				buf = append(buf, r.data[segStart:i]...)
			}
			r.i = i + 1
			return buf, nil
		case c == '\\':
			if segStart >= 0 {
				if !utf8.Valid(r.data[segStart:i]) {
					r.i = segStart
					return nil, r.syntaxErr("invalid UTF-8 in string")
				}
				buf = append(buf, r.data[segStart:i]...)
				segStart = -1
			}
			if i+1 >= len(r.data) {
				r.i = len(r.data)
				return nil, r.syntaxErr("unterminated string")
			}
			switch r.data[i+1] {
			case '"':
				buf = append(buf, '"')
			case '\\':
				buf = append(buf, '\\')
			case '/':
				buf = append(buf, '/')
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r.i = i
				c1, ok := hex4(r.data, i+2)
				if !ok {
					return nil, r.syntaxErr("invalid \\u escape")
				}
				i += 6
				rn := rune(c1)
				if utf16.IsSurrogate(rn) {
					c2, ok := -1, false
					if i+1 < len(r.data) && r.data[i] == '\\' && r.data[i+1] == 'u' {
						c2, ok = hex4(r.data, i+2)
					}
					if !ok || rn >= 0xDC00 || c2 < 0xDC00 || c2 > 0xDFFF {
						return nil, r.syntaxErr("lone UTF-16 surrogate in \\u escape")
					}
					rn = utf16.DecodeRune(rn, rune(c2))
					i += 6
				}
				buf = utf8.AppendRune(buf, rn)
				continue
			default:
				r.i = i
				return nil, r.syntaxErr("invalid escape in string")
			}
			i += 2
			continue
		case c < 0x20:
			r.i = i
			return nil, r.syntaxErr("control character in string")
		}
		if segStart < 0 {
			segStart = i
		}
		i++
	}
	r.i = len(r.data)
	return nil, r.syntaxErr("unterminated string")
}

func hex4(b []byte, at int) (int, bool) {
	if at+4 > len(b) {
		return -1, false
	}
	v := 0
	for _, c := range b[at : at+4] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | int(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return -1, false
		}
	}
	return v, true
}

// scanNumber validates a JSON number at r.i and returns its span.
func (r *reader) scanNumber() (start, end int, isInt bool, err error) {
	start = r.i
	i := r.i
	d := r.data
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		r.i = i
		return 0, 0, false, r.syntaxErr("invalid number")
	}
	isInt = true
	if i < len(d) && d[i] == '.' {
		isInt = false
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			r.i = i
			return 0, 0, false, r.syntaxErr("invalid number")
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		isInt = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			r.i = i
			return 0, 0, false, r.syntaxErr("invalid number")
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	r.i = i
	return start, i, isInt, nil
}

func isNumStart(c byte) bool { return c == '-' || ('0' <= c && c <= '9') }

// readInt reads a JSON integer that fits in int64.
func (r *reader) readInt() (int64, error) {
	if !isNumStart(r.peek()) {
		return 0, r.typeErr("integer")
	}
	start, end, isInt, err := r.scanNumber()
	if err != nil {
		return 0, err
	}
	tok := r.data[start:end]
	if !isInt {
		return 0, newErr(ErrWrongType, "expected integer, got number "+string(tok))
	}
	v, perr := strconv.ParseInt(string(tok), 10, 64)
	if perr != nil {
		return 0, newErr(ErrWrongType, "integer "+string(tok)+" out of range")
	}
	return v, nil
}

// readFloat reads any finite JSON number as float64.
func (r *reader) readFloat() (float64, error) {
	if !isNumStart(r.peek()) {
		return 0, r.typeErr("number")
	}
	start, end, _, err := r.scanNumber()
	if err != nil {
		return 0, err
	}
	f, perr := strconv.ParseFloat(string(r.data[start:end]), 64)
	if perr != nil || math.IsInf(f, 0) {
		return 0, newErr(ErrWrongType, "number "+string(r.data[start:end])+" out of range")
	}
	return f, nil
}

func (r *reader) readBool() (bool, error) {
	r.skipWS()
	d := r.data[r.i:]
	if len(d) >= 4 && string(d[:4]) == "true" {
		r.i += 4
		return true, nil
	}
	if len(d) >= 5 && string(d[:5]) == "false" {
		r.i += 5
		return false, nil
	}
	return false, r.typeErr("boolean")
}

func (r *reader) literal(lit string) error {
	if len(r.data)-r.i >= len(lit) && string(r.data[r.i:r.i+len(lit)]) == lit {
		r.i += len(lit)
		return nil
	}
	return r.syntaxErr("invalid literal")
}

// skipValue validates and skips one JSON value.
func (r *reader) skipValue() error {
	switch c := r.peek(); {
	case c == '{':
		return r.object(func([]byte) error { return r.skipValue() })
	case c == '[':
		return r.array(func(int) error { return r.skipValue() })
	case c == '"':
		return r.skipString()
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	case isNumStart(c):
		_, _, _, err := r.scanNumber()
		return err
	default:
		return r.syntaxErr("expected a JSON value")
	}
}

func (r *reader) skipString() error {
	start := r.i + 1
	nonASCII := false
	for i := start; i < len(r.data); i++ {
		c := r.data[i]
		switch {
		case c == '"':
			if nonASCII && !utf8.Valid(r.data[start:i]) {
				r.i = start
				return r.syntaxErr("invalid UTF-8 in string")
			}
			r.i = i + 1
			return nil
		case c == '\\':
			_, err := r.readEscaped(start, i, nil)
			return err
		case c < 0x20:
			r.i = i
			return r.syntaxErr("control character in string")
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
	}
	r.i = len(r.data)
	return r.syntaxErr("unterminated string")
}

// rawKind restricts what readRaw accepts.
type rawKind int

const (
	rawAny    rawKind = iota // any JSON value (pydantic JsonValue)
	rawObject                // a JSON object (pydantic dict)
)

// readRaw reads one JSON value and returns it in the canonical form pydantic's
// model_dump_json would re-emit (compact, strings re-escaped, floats formatted as
// pydantic does). A null value gives nil. Duplicate keys are rejected.
func (r *reader) readRaw(kind rawKind) (json.RawMessage, error) {
	if r.tryNull() {
		return nil, nil
	}
	if kind == rawObject && r.peek() != '{' {
		return nil, r.typeErr("object")
	}
	buf, err := r.appendCanonical(nil)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(buf), nil
}

// appendCanonical appends the canonical form of the next value to buf.
func (r *reader) appendCanonical(buf []byte) ([]byte, error) {
	switch c := r.peek(); {
	case c == '{':
		buf = append(buf, '{')
		var keys keySet
		err := r.object(func(key []byte) error {
			ks, dup := keys.add(key)
			if dup {
				return dupKey(ks)
			}
			if keys.n() > 1 {
				buf = append(buf, ',')
			}
			buf = appendPydString(buf, ks)
			buf = append(buf, ':')
			var err error
			buf, err = r.appendCanonical(buf)
			if err != nil {
				return inField(err, ks)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return append(buf, '}'), nil
	case c == '[':
		buf = append(buf, '[')
		err := r.array(func(i int) error {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			buf, err = r.appendCanonical(buf)
			return err
		})
		if err != nil {
			return nil, err
		}
		return append(buf, ']'), nil
	case c == '"':
		start := r.i
		if err := r.skipString(); err != nil {
			return nil, err
		}
		if !hasByte(r.data[start:r.i], '\\') {
			// An escape-free JSON string is already canonical.
			return append(buf, r.data[start:r.i]...), nil
		}
		dec, err := r.readEscaped(start+1, start+1+bytesIndex(r.data[start+1:r.i], '\\'), nil)
		if err != nil {
			return nil, err
		}
		return appendPydString(buf, string(dec)), nil
	case c == 't':
		if err := r.literal("true"); err != nil {
			return nil, err
		}
		return append(buf, "true"...), nil
	case c == 'f':
		if err := r.literal("false"); err != nil {
			return nil, err
		}
		return append(buf, "false"...), nil
	case c == 'n':
		if err := r.literal("null"); err != nil {
			return nil, err
		}
		return append(buf, "null"...), nil
	case isNumStart(c):
		start, end, isInt, err := r.scanNumber()
		if err != nil {
			return nil, err
		}
		return appendCanonicalNumber(buf, r.data[start:end], isInt, appendPydFloat)
	default:
		return nil, r.syntaxErr("expected a JSON value")
	}
}

// appendCanonicalNumber re-emits a number token as Python would after json.loads:
// integers keep their digits ("-0" becomes "0"), other numbers become floats
// formatted by ffmt.
func appendCanonicalNumber(buf, tok []byte, isInt bool, ffmt func([]byte, float64) []byte) ([]byte, error) {
	if isInt {
		if string(tok) == "-0" {
			return append(buf, '0'), nil
		}
		return append(buf, tok...), nil
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, newErr(ErrInvalidValue, "number "+string(tok)+" out of range")
	}
	return ffmt(buf, f), nil
}

func bytesIndex(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// keySet detects duplicate object keys: a slice for small objects, a map beyond.
type keySet struct {
	keys []string
	set  map[string]struct{}
}

func (s *keySet) n() int {
	if s.set != nil {
		return len(s.set)
	}
	return len(s.keys)
}

// add records key and reports whether it was already present.
func (s *keySet) add(key []byte) (string, bool) {
	if s.set != nil {
		if _, ok := s.set[string(key)]; ok {
			return string(key), true
		}
		k := string(key)
		s.set[k] = struct{}{}
		return k, false
	}
	for _, k := range s.keys {
		if k == string(key) {
			return k, true
		}
	}
	k := string(key)
	s.keys = append(s.keys, k)
	if len(s.keys) > 16 {
		s.set = make(map[string]struct{}, 64)
		for _, x := range s.keys {
			s.set[x] = struct{}{}
		}
		s.keys = nil
	}
	return k, false
}
