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

func fStr(r *reader, seen *uint64, bit int, name string, dst *string) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	s, err := r.readString()
	if err != nil {
		return inField(err, name)
	}
	*dst = s
	return nil
}

// fID reads a job identifier: any string except the empty one.
func fID(r *reader, seen *uint64, bit int, name string, dst *string) error {
	if err := fStr(r, seen, bit, name, dst); err != nil {
		return err
	}
	if *dst == "" {
		return &DecodeError{Field: name, Msg: "must not be empty", Err: ErrInvalidValue}
	}
	return nil
}

func fOptStr(r *reader, seen *uint64, bit int, name string, dst **string) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if r.tryNull() {
		*dst = nil
		return nil
	}
	s, err := r.readString()
	if err != nil {
		return inField(err, name)
	}
	*dst = &s
	return nil
}

func fInt(r *reader, seen *uint64, bit int, name string, dst *int) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	v, err := r.readInt()
	if err != nil {
		return inField(err, name)
	}
	*dst = int(v)
	return nil
}

func fInt64(r *reader, seen *uint64, bit int, name string, dst *int64) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	v, err := r.readInt()
	if err != nil {
		return inField(err, name)
	}
	*dst = v
	return nil
}

func fOptInt(r *reader, seen *uint64, bit int, name string, dst **int) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if r.tryNull() {
		*dst = nil
		return nil
	}
	v, err := r.readInt()
	if err != nil {
		return inField(err, name)
	}
	n := int(v)
	*dst = &n
	return nil
}

func fFloat(r *reader, seen *uint64, bit int, name string, dst *float64) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	v, err := r.readFloat()
	if err != nil {
		return inField(err, name)
	}
	*dst = v
	return nil
}

func fBool(r *reader, seen *uint64, bit int, name string, dst *bool) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	v, err := r.readBool()
	if err != nil {
		return inField(err, name)
	}
	*dst = v
	return nil
}

func fStrList(r *reader, seen *uint64, bit int, name string, dst *[]string) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	list := []string{}
	err := r.array(func(int) error {
		s, err := r.readString()
		list = append(list, s)
		return err
	})
	if err != nil {
		return inField(err, name)
	}
	*dst = list
	return nil
}

func fIntList(r *reader, seen *uint64, bit int, name string, dst *[]int) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	list := []int{}
	err := r.array(func(int) error {
		v, err := r.readInt()
		list = append(list, int(v))
		return err
	})
	if err != nil {
		return inField(err, name)
	}
	*dst = list
	return nil
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

func fTimestamp(r *reader, seen *uint64, bit int, name string, dst *Timestamp) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	t, err := r.readTimestamp()
	if err != nil {
		return inField(err, name)
	}
	*dst = t
	return nil
}

func fStrMap(r *reader, seen *uint64, bit int, name string, dst *OrderedMap[string]) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if err := decodeOrderedMap(r, dst, decStringValue); err != nil {
		return inField(err, name)
	}
	return nil
}

func fOptStrMap(r *reader, seen *uint64, bit int, name string, dst **OrderedMap[string]) error {
	if err := mark(seen, bit, name); err != nil {
		return err
	}
	if err := decodeOptMap(r, dst, decStringValue); err != nil {
		return inField(err, name)
	}
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

// fOptObj decodes a nullable nested model; alloc returns a fresh target and
// store keeps it (or clears the field on null).
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
	list := []T{}
	err := r.array(func(int) error {
		var v T
		err := PT(&v).decode(r)
		list = append(list, v)
		return err
	})
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
