package protocol

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
)

// pyjson writes values exactly as Python's json.dumps(value, sort_keys=True)
// does with default settings: separators ", " and ": ", ensure_ascii escaping,
// keys sorted by code point at every level, floats as repr(). Upstream signs these
// bytes (receipt blobs, the compute_horde_core signature payloads).

// pyDict is a Python dict: written with its keys sorted.
type pyDict []pyItem

type pyItem struct {
	k string
	v any
}

// pyDumps appends the Python json.dumps(sort_keys=True) form of v. Supported
// values: nil, bool, string, int, int64, float64, []int, []string, Timestamp,
// pyDict, []any and json.RawMessage (any JSON, re-read and sorted).
func pyDumps(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		return appendPyString(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case float64:
		return appendPyFloat(b, x), nil
	case Timestamp:
		b = append(b, '"')
		b = x.appendText(b)
		return append(b, '"'), nil
	case []int:
		b = append(b, '[')
		for i, n := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		return append(b, ']'), nil
	case []string:
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, s)
		}
		return append(b, ']'), nil
	case []any:
		b = append(b, '[')
		for i, item := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			var err error
			if b, err = pyDumps(b, item); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case pyDict:
		items := slices.Clone(x)
		slices.SortStableFunc(items, func(a, b pyItem) int { return cmp.Compare(a.k, b.k) })
		b = append(b, '{')
		for i, it := range items {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, it.k)
			b = append(b, ": "...)
			var err error
			if b, err = pyDumps(b, it.v); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case json.RawMessage:
		if x == nil {
			return append(b, "null"...), nil
		}
		r := reader{data: x}
		b, err := r.appendPy(b)
		if err == nil {
			err = r.end()
		}
		return b, err
	}
	return nil, newErr(ErrInvalidValue, "pyjson: unsupported value")
}

// appendPy re-writes the next JSON value in Python json.dumps(sort_keys=True) form.
func (r *reader) appendPy(b []byte) ([]byte, error) {
	switch c := r.peek(); {
	case c == '{':
		type member struct {
			key        string
			start, end int
		}
		var members []member
		var keys keySet
		err := r.object(func(key []byte) error {
			k, dup := keys.add(key)
			if dup {
				return dupKey(k)
			}
			start := r.i
			if err := r.skipValue(); err != nil {
				return inField(err, k)
			}
			members = append(members, member{k, start, r.i})
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.SortFunc(members, func(a, b member) int { return cmp.Compare(a.key, b.key) })
		b = append(b, '{')
		for i, m := range members {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, m.key)
			b = append(b, ": "...)
			sub := reader{data: r.data[:m.end], i: m.start, depth: r.depth + 1}
			if b, err = sub.appendPy(b); err != nil {
				return nil, inField(err, m.key)
			}
		}
		return append(b, '}'), nil
	case c == '[':
		b = append(b, '[')
		err := r.array(func(i int) error {
			if i > 0 {
				b = append(b, ", "...)
			}
			var err error
			b, err = r.appendPy(b)
			return err
		})
		if err != nil {
			return nil, err
		}
		return append(b, ']'), nil
	case c == '"':
		s, err := r.readString()
		if err != nil {
			return nil, err
		}
		return appendPyString(b, s), nil
	case c == 't':
		return append(b, "true"...), r.literal("true")
	case c == 'f':
		return append(b, "false"...), r.literal("false")
	case c == 'n':
		return append(b, "null"...), r.literal("null")
	case isNumStart(c):
		start, end, isInt, err := r.scanNumber()
		if err != nil {
			return nil, err
		}
		return appendCanonicalNumber(b, r.data[start:end], isInt, appendPyFloat)
	}
	return nil, r.syntaxErr("expected a JSON value")
}
