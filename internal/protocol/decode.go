package protocol

import (
	"encoding/json"
	"math/bits"
	"strconv"
)

// This file holds the field-level helpers every model's decode method uses.
// Each helper records the field in the model's "seen" bit set (rejecting
// duplicates), reads the value and names the field in any error.

func dupKey(name string) error {
	return &DecodeError{Field: name, Msg: "duplicate key " + strconv.Quote(name), Err: ErrDuplicateKey}
}

func mark(seen *uint64, bit int, name string) error {
	m := uint64(1) << bit
	if *seen&m != 0 {
		return dupKey(name)
	}
	*seen |= m
	return nil
}

// checkRequired reports the first required field (in declaration order) not seen.
func checkRequired(seen, required uint64, names []string) error {
	missing := required &^ seen
	if missing == 0 {
		return nil
	}
	name := names[bits.TrailingZeros64(missing)]
	return &DecodeError{Field: name, Msg: "missing required field", Err: ErrMissingField}
}

func forbidden(key []byte) error {
	return &DecodeError{Field: string(key), Msg: "unexpected field (this model forbids extra fields)", Err: ErrUnknownField}
}

// fVal reads a value that may not be null with read.
func fVal[T any](r *reader, seen *uint64, bit int, name string, dst *T, read func(*reader) (T, error)) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	v, err := read(r)
	if err != nil {
		return inField(err, name)
	}
	*dst = v
	return nil
}

// fOpt reads a nullable value with read: null leaves dst nil.
func fOpt[T any](r *reader, seen *uint64, bit int, name string, dst **T, read func(*reader) (T, error)) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if r.tryNull() {
		*dst = nil
		return nil
	}
	v, err := read(r)
	if err != nil {
		return inField(err, name)
	}
	*dst = &v
	return nil
}

// The readers of fVal and fOpt that are not reader methods.

// readID reads a job identifier: any string except the empty one.
func readID(r *reader) (string, error) {
	s, err := r.readString()
	if err == nil && s == "" {
		err = &DecodeError{Msg: "must not be empty", Err: ErrInvalidValue}
	}
	return s, err
}

func readIntValue(r *reader) (int, error) {
	v, err := r.readInt()
	return int(v), err
}

func readStrList(r *reader) ([]string, error) { return readList(r, (*reader).readString) }
func readIntList(r *reader) ([]int, error)    { return readList(r, readIntValue) }

func readList[T any](r *reader, read func(*reader) (T, error)) ([]T, error) {
	list := []T{}
	err := r.array(func(int) error {
		v, err := read(r)
		list = append(list, v)
		return err
	})
	return list, err
}

// readListInto reads a list of models, decoding each in place: a model decoded into a local
// through a function value would escape to the heap, one allocation per element.
func readListInto[T any](r *reader, decode func(*T, *reader) error) ([]T, error) {
	list := []T{}
	err := r.array(func(int) error {
		list = append(list, *new(T))
		return decode(&list[len(list)-1], r)
	})
	return list, err
}

func readStrMap(r *reader) (OrderedMap[string], error) {
	var m OrderedMap[string]
	err := decodeOrderedMap(r, &m, (*reader).readString)
	return m, err
}

func fEnum[T ~string](r *reader, seen *uint64, bit int, name string, d *enumDef[T], dst *T) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	v, err := readEnum(r, d)
	if err != nil {
		return inField(err, name)
	}
	*dst = v
	return nil
}

// fLiteral checks a Literal field (message_type, type, receipt_type, volume_type, ...).
func fLiteral(r *reader, seen *uint64, bit int, name, want string) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	s, err := r.readString()
	if err != nil {
		return inField(err, name)
	}
	if s != want {
		return &DecodeError{Field: name, Msg: "expected " + strconv.Quote(want) + ", got " + strconv.Quote(s),
			Err: ErrUnknownEnumValue}
	}
	return nil
}

func fRaw(r *reader, seen *uint64, bit int, name string, kind rawKind, dst *json.RawMessage) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	raw, err := r.readRaw(kind)
	if err != nil {
		return inField(err, name)
	}
	*dst = raw
	return nil
}

// fRawRequired reads a required free-form value that may not be null.
func fRawRequired(r *reader, seen *uint64, bit int, name string, kind rawKind, dst *json.RawMessage) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if r.peek() == 'n' {
		return inField(r.typeErr("object"), name)
	}
	raw, err := r.readRaw(kind)
	if err != nil {
		return inField(err, name)
	}
	*dst = raw
	return nil
}

// fObj decodes a nested model.
func fObj(r *reader, seen *uint64, bit int, name string, dst codecTarget) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if err := dst.decode(r); err != nil {
		return inField(err, name)
	}
	return nil
}

// fOptObj decodes a nullable nested model; null clears the field.
func fOptObj[T any, PT interface {
	*T
	codecTarget
}](r *reader, seen *uint64, bit int, name string, dst **T) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if r.tryNull() {
		*dst = nil
		return nil
	}
	v := PT(new(T))
	if err := v.decode(r); err != nil {
		return inField(err, name)
	}
	*dst = (*T)(v)
	return nil
}

// fList decodes a list of nested models.
func fList[T any, PT interface {
	*T
	codecTarget
}](r *reader, seen *uint64, bit int, name string, dst *[]T) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	list, err := readListInto(r, func(v *T, r *reader) error { return PT(v).decode(r) })
	if err != nil {
		return inField(err, name)
	}
	*dst = list
	return nil
}

// fVia decodes a field with a codec of its own (the `via=` of a wire tag).
func fVia[T any](r *reader, seen *uint64, bit int, name string, dst *T, dec func(*reader, *T) error) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if err := dec(r, dst); err != nil {
		return inField(err, name)
	}
	return nil
}

// extras collects the undeclared keys of an extra="allow" model.
type extras struct {
	m   OrderedMap[json.RawMessage]
	set map[string]struct{}
}

func (x *extras) add(r *reader, key []byte) error {
	dup := false
	if x.set != nil {
		_, dup = x.set[string(key)]
	} else {
		for _, e := range x.m.entries {
			if e.Key == string(key) {
				dup = true
				break
			}
		}
	}
	if dup {
		return dupKey(string(key))
	}
	k := r.keyString(key)
	raw, err := r.readRaw(rawAny)
	if err != nil {
		return inField(err, k)
	}
	if raw == nil {
		raw = json.RawMessage("null")
	}
	x.m.entries = append(x.m.entries, Entry[json.RawMessage]{k, raw})
	if x.set == nil && len(x.m.entries) > 16 {
		x.set = make(map[string]struct{}, 64)
		for _, e := range x.m.entries {
			x.set[e.Key] = struct{}{}
		}
	} else if x.set != nil {
		x.set[k] = struct{}{}
	}
	return nil
}

// encodeExtra writes the extra keys of an extra="allow" model after its declared
// fields (the caller has written at least one field, so each entry starts with ',').
func encodeExtra(e *encoder, extra OrderedMap[json.RawMessage]) {
	for _, ent := range extra.entries {
		e.byte1(',')
		e.str(ent.Key)
		e.byte1(':')
		e.rawJSON(ent.Key, ent.Value, rawAny)
	}
}

// decodeMembers reads a list of union members, each passing allowed.
func decodeMembers[T any, E ~string](r *reader, dst *[]T, decode func(*T, *reader, func(E) string) error, allowed func(E) string) error {
	list, err := readListInto(r, func(v *T, r *reader) error { return decode(v, r, allowed) })
	if err != nil {
		return err
	}
	*dst = list
	return nil
}

// encodeMembers writes a list of union members, each passing allowed.
func encodeMembers[T any, E ~string](e *encoder, list []T, encode func(T, *encoder, string, func(E) string), field string, allowed func(E) string) {
	e.byte1('[')
	for i, v := range list {
		if i > 0 {
			e.byte1(',')
		}
		encode(v, e, field, allowed)
	}
	e.byte1(']')
}

// readTag reads the discriminator key of the union object at r, without consuming the
// object, and parses it with d.
func readTag[T ~string](r *reader, key string, d *enumDef[T]) (T, error) {
	if r.peek() != '{' {
		return "", r.typeErr("object")
	}
	tag, ok, err := r.peekDiscriminator(key)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", &DecodeError{Field: key, Msg: "missing discriminator", Err: ErrMissingField}
	}
	v, err := d.parse(tag)
	if err != nil {
		return "", inField(err, key)
	}
	return v, nil
}

var errStop = &DecodeError{Msg: "stop"}

// peekDiscriminator finds the string value of key name in the object at r
// without consuming it. Members before the key are validated and skipped; the
// rest is left for the model decoder.
func (r *reader) peekDiscriminator(name string) (string, bool, error) {
	save := *r
	defer func() { *r = save }()
	var val string
	found := false
	err := r.object(func(key []byte) error {
		if string(key) == name {
			s, err := r.readString()
			if err != nil {
				return inField(err, name)
			}
			val, found = s, true
			return errStop
		}
		return r.skipValue()
	})
	if err == errStop {
		err = nil
	}
	return val, found, err
}
