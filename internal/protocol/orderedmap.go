package protocol

import (
	"encoding/json"
	"iter"
	"slices"
	"strconv"
)

// Entry is one key/value pair of an OrderedMap.
type Entry[V any] struct {
	Key   string
	Value V
}

// OrderedMap is a JSON object whose key order is significant and preserved
// (env, manifest, form_fields, signed_headers, artifacts, upload_results, extra
// keys). Upstream signs and re-emits these in insertion order, so a Go map would
// break byte equality and signatures. Keys are unique: decoding rejects duplicate
// keys and Set replaces in place. The zero value is an empty map.
type OrderedMap[V any] struct {
	entries []Entry[V]
}

// OrderedMapOf builds a map from entries in order; a repeated key keeps its first
// position and its last value.
func OrderedMapOf[V any](entries ...Entry[V]) OrderedMap[V] {
	var m OrderedMap[V]
	for _, e := range entries {
		m.Set(e.Key, e.Value)
	}
	return m
}

// Len returns the number of entries.
func (m OrderedMap[V]) Len() int { return len(m.entries) }

// Get returns the value for key.
func (m OrderedMap[V]) Get(key string) (V, bool) {
	for _, e := range m.entries {
		if e.Key == key {
			return e.Value, true
		}
	}
	var zero V
	return zero, false
}

// Set replaces the value of an existing key in place or appends a new entry.
func (m *OrderedMap[V]) Set(key string, value V) {
	for i := range m.entries {
		if m.entries[i].Key == key {
			m.entries[i].Value = value
			return
		}
	}
	m.entries = append(m.entries, Entry[V]{key, value})
}

// Delete removes key and reports whether it was present.
func (m *OrderedMap[V]) Delete(key string) bool {
	for i := range m.entries {
		if m.entries[i].Key == key {
			m.entries = slices.Delete(m.entries, i, i+1)
			return true
		}
	}
	return false
}

// Keys returns the keys in order.
func (m OrderedMap[V]) Keys() []string {
	keys := make([]string, len(m.entries))
	for i, e := range m.entries {
		keys[i] = e.Key
	}
	return keys
}

// Entries returns a copy of the entries in order.
func (m OrderedMap[V]) Entries() []Entry[V] { return slices.Clone(m.entries) }

// All iterates the entries in order.
func (m OrderedMap[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		for _, e := range m.entries {
			if !yield(e.Key, e.Value) {
				return
			}
		}
	}
}

// MarshalJSON writes the entries in order, compact, like pydantic.
func (m OrderedMap[V]) MarshalJSON() ([]byte, error) {
	e := encoder{}
	encodeOrderedMap(&e, m, func(e *encoder, v V) { encodeAny(e, v) })
	return e.b, e.err
}

// UnmarshalJSON reads a JSON object keeping key order; duplicate keys are an error.
func (m *OrderedMap[V]) UnmarshalJSON(data []byte) error {
	r := reader{data: data}
	var out OrderedMap[V]
	err := decodeOrderedMap(&r, &out, func(r *reader) (V, error) {
		var v V
		err := decodeAny(r, &v)
		return v, err
	})
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return err
	}
	*m = out
	return nil
}

// decodeOrderedMap reads a JSON object into m with dec for the values.
func decodeOrderedMap[V any](r *reader, m *OrderedMap[V], dec func(*reader) (V, error)) error {
	var set map[string]struct{}
	m.entries = m.entries[:0]
	return r.object(func(key []byte) error {
		if set == nil && len(m.entries) >= 16 {
			set = make(map[string]struct{}, 2*len(m.entries))
			for _, e := range m.entries {
				set[e.Key] = struct{}{}
			}
		}
		dup := false
		if set != nil {
			_, dup = set[string(key)]
		} else {
			for _, e := range m.entries {
				if e.Key == string(key) {
					dup = true
					break
				}
			}
		}
		if dup {
			return newErr(ErrDuplicateKey, "duplicate key "+strconv.Quote(string(key)))
		}
		k := r.keyString(key)
		v, err := dec(r)
		if err != nil {
			return inField(err, k)
		}
		if set != nil {
			set[k] = struct{}{}
		}
		m.entries = append(m.entries, Entry[V]{k, v})
		return nil
	})
}

// keyString converts a key returned by nextKey to a string, sharing the frame's
// string when the key aliases the input.
func (r *reader) keyString(key []byte) string {
	if r.s != "" && len(key) > 0 && len(r.data) > 0 {
		// key aliases r.data iff its backing array lies within it.
		off := cap(r.data) - cap(key)
		if off >= 0 && off+len(key) <= len(r.data) && &r.data[off] == &key[0] {
			return r.s[off : off+len(key)]
		}
	}
	return string(key)
}

func encodeOrderedMap[V any](e *encoder, m OrderedMap[V], enc func(*encoder, V)) {
	e.byte1('{')
	for i, ent := range m.entries {
		if i > 0 {
			e.byte1(',')
		}
		e.str(ent.Key)
		e.byte1(':')
		enc(e, ent.Value)
	}
	e.byte1('}')
}

func encodeOptMap[V any](e *encoder, m *OrderedMap[V], enc func(*encoder, V)) {
	if m == nil {
		e.null()
		return
	}
	encodeOrderedMap(e, *m, enc)
}

func encStringValue(e *encoder, s string) { e.str(s) }
func encIntValue(e *encoder, v int)       { e.int(v) }

// codecValue is implemented by this package's types that have a native codec.
type codecValue interface {
	encode(e *encoder)
}

type codecTarget interface {
	decode(r *reader) error
}

// encodeAny writes a value of a type parameter: fast paths for the types this
// package uses, encoding/json (compacted and canonicalised) otherwise.
func encodeAny(e *encoder, v any) {
	switch x := v.(type) {
	case string:
		e.str(x)
	case int:
		e.int(x)
	case int64:
		e.int64(x)
	case float64:
		e.float("", x)
	case bool:
		e.boolean(x)
	case json.RawMessage:
		e.rawJSON("", x, rawAny)
	case codecValue:
		x.encode(e)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			e.fail("", err.Error(), ErrInvalidValue)
			e.null()
			return
		}
		e.rawJSON("", b, rawAny)
	}
}

// readInto stores what read returns in dst, error or not.
func readInto[T any](r *reader, dst *T, read func(*reader) (T, error)) error {
	v, err := read(r)
	*dst = v
	return err
}

func decodeAny(r *reader, v any) error {
	switch x := v.(type) {
	case *string:
		return readInto(r, x, (*reader).readString)
	case *int:
		return readInto(r, x, readIntValue)
	case *int64:
		return readInto(r, x, (*reader).readInt)
	case *float64:
		return readInto(r, x, (*reader).readFloat)
	case *bool:
		return readInto(r, x, (*reader).readBool)
	case *json.RawMessage:
		return readInto(r, x, func(r *reader) (json.RawMessage, error) { return r.readRaw(rawAny) })
	case codecTarget:
		return x.decode(r)
	default:
		start := r.i
		if err := r.skipValue(); err != nil {
			return err
		}
		if err := json.Unmarshal(r.data[start:r.i], v); err != nil {
			return newErr(ErrWrongType, err.Error())
		}
		return nil
	}
}
