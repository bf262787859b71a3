// Package config reads a role's configuration file the way every horde role does: TOML,
// decoded strictly (an unknown key, a wrong type or a syntax error is an error naming the
// key and its line), then overridden key by key from the environment, and described for the
// start-up log with secrets masked.
//
// A configuration is a struct whose fields carry `toml:"name"` tags; nested structs are
// tables. Every leaf key is also the environment variable PREFIX_TABLE_KEY (upper case,
// non-alphanumerics as underscores), e.g. HORDE_MINER_CHAIN_TOKEN for [chain] token.
// Environment values win over the file. Fields tagged `secret:"true"` never appear in
// [Describe]'s output.
//
// Supported leaf types: string, bool, signed and unsigned integers, floats, [Duration],
// []string (comma-separated in the environment), map[string]int and map[string]float64
// ("k=v,k=v").
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// MaxFileBytes bounds a configuration file.
const MaxFileBytes = 1 << 20

// Duration is a time.Duration written as a Go duration string ("90s", "5m").
type Duration time.Duration

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 5m", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as Go prints it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Load reads the file at path into dst (a pointer to a struct) strictly, then applies the
// environment (getenv, usually os.Getenv) under prefix. An empty path reads no file.
func Load(path string, dst any, prefix string, getenv func(string) string) error {
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return err
		}
		if err := Decode(data, dst); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return ApplyEnv(dst, prefix, getenv)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s is larger than %d bytes; a configuration file is small", path, MaxFileBytes)
	}
	return data, nil
}

// Decode decodes TOML data into dst strictly; errors name the key and the line.
func Decode(data []byte, dst any) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &strict):
		var msgs []string
		for _, e := range strict.Errors {
			row, _ := e.Position()
			msgs = append(msgs, fmt.Sprintf("line %d: unknown key %q", row, strings.Join(e.Key(), ".")))
		}
		return errors.New(strings.Join(msgs, "; ") + "; check the spelling against the documented example")
	case errors.As(err, &de):
		row, _ := de.Position()
		if k := de.Key(); len(k) > 0 {
			return fmt.Errorf("line %d: key %q: %v", row, strings.Join(k, "."), de.Error())
		}
		return fmt.Errorf("line %d: %v", row, de.Error())
	}
	return err
}

// Key is one leaf key of a configuration.
type Key struct {
	Path   string // "chain.token"
	Env    string // "HORDE_MINER_CHAIN_TOKEN"
	Secret bool
	value  reflect.Value
}

// Keys lists the leaf keys of the configuration v (a struct or a pointer to one), in field
// order, with their environment variables under prefix.
func Keys(v any, prefix string) []Key {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	var out []Key
	walk(rv, nil, false, func(path []string, secret bool, f reflect.Value) {
		out = append(out, Key{Path: strings.Join(path, "."), Env: envName(prefix, path), Secret: secret, value: f})
	})
	return out
}

var durationType = reflect.TypeFor[Duration]()

func walk(v reflect.Value, path []string, secret bool, leaf func([]string, bool, reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		p := append(slices.Clip(path), name)
		s := secret || sf.Tag.Get("secret") == "true"
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != durationType {
			walk(f, p, s, leaf)
			continue
		}
		leaf(p, s, f)
	}
}

func envName(prefix string, path []string) string {
	name := strings.ToUpper(strings.Join(append([]string{prefix}, path...), "_"))
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

// ApplyEnv sets every key whose environment variable is set and not empty.
func ApplyEnv(dst any, prefix string, getenv func(string) string) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: ApplyEnv needs a pointer to a struct, not %T", dst)
	}
	for _, k := range Keys(dst, prefix) {
		s := getenv(k.Env)
		if s == "" {
			continue
		}
		if err := setFromString(k.value, s); err != nil {
			shown := s
			if k.Secret {
				shown = "****"
			}
			return fmt.Errorf("$%s=%q (key %s): %v", k.Env, shown, k.Path, err)
		}
	}
	return nil
}

func setFromString(f reflect.Value, s string) error {
	if f.CanAddr() {
		if u, ok := f.Addr().Interface().(interface{ UnmarshalText([]byte) error }); ok {
			return u.UnmarshalText([]byte(s))
		}
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("not true or false")
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer of %d bits", f.Type().Bits())
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a non-negative integer of %d bits", f.Type().Bits())
		}
		f.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, f.Type().Bits())
		if err != nil {
			return errors.New("not a number")
		}
		f.SetFloat(n)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot set a %s from the environment", f.Type())
		}
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		f.Set(reflect.ValueOf(items))
	case reflect.Map:
		elem := f.Type().Elem().Kind()
		if f.Type().Key().Kind() != reflect.String || (elem != reflect.Int && elem != reflect.Float64) {
			return fmt.Errorf("cannot set a %s from the environment", f.Type())
		}
		m := reflect.MakeMap(f.Type())
		for _, it := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(it), "=")
			val := reflect.New(f.Type().Elem()).Elem()
			if !ok || k == "" || setFromString(val, v) != nil {
				return fmt.Errorf("%q is not KEY=%s", it, map[reflect.Kind]string{reflect.Int: "INTEGER", reflect.Float64: "NUMBER"}[elem])
			}
			m.SetMapIndex(reflect.ValueOf(k), val)
		}
		f.Set(m)
	default:
		return fmt.Errorf("cannot set a %s from the environment", f.Type())
	}
	return nil
}

// Describe renders the configuration as "key = value" lines in field order, with secrets
// shown as **** (or "(none)" when empty), for the start-up log.
func Describe(v any) string {
	var b strings.Builder
	for _, k := range Keys(v, "") {
		val := fmt.Sprint(k.value.Interface())
		if tm, ok := k.value.Interface().(interface{ MarshalText() ([]byte, error) }); ok {
			if t, err := tm.MarshalText(); err == nil {
				val = string(t)
			}
		}
		if k.Secret {
			val = "****"
			if k.value.IsZero() {
				val = "(none)"
			}
		}
		fmt.Fprintf(&b, "%s = %s\n", k.Path, val)
	}
	return b.String()
}
