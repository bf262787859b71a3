package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// rebind rewrites a query written with `?` placeholders for the dialect: unchanged for
// SQLite, `$1, $2, …` for PostgreSQL. Question marks inside string literals, quoted
// identifiers and -- comments are left alone.
func (d dialect) rebind(q string) string {
	if d != dialectPostgres {
		return q
	}
	return rebindDollar(q)
}

func rebindDollar(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			// Copy the quoted run; a doubled quote ('it''s') closes and reopens, which
			// copies correctly.
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// placeholders returns "?, ?, ?" with n marks, for IN lists.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// sqliteTimeLayout is how SQLite keeps times: fixed width, so text order is time order.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// timeArg converts t for a query argument: UTC, truncated to the microsecond, as text on
// SQLite and as a time.Time for PostgreSQL (timestamptz).
func (d dialect) timeArg(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if d == dialectPostgres {
		return t
	}
	return t.Format(sqliteTimeLayout)
}

// timeCol scans a time column written by timeArg on either engine into a UTC time.Time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case time.Time:
		*c.t = v.UTC()
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	default:
		return fmt.Errorf("store: cannot read %T as a time", src)
	}
	return nil
}

func (c timeCol) parse(s string) error {
	t, err := time.Parse(sqliteTimeLayout, s)
	if err != nil {
		// Written by something else (a hand edit, another tool): accept any RFC 3339 time.
		t, err = time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("store: stored time %q is not RFC 3339: %w", s, err)
		}
	}
	*c.t = t.UTC()
	return nil
}

// nullText turns an empty byte slice into SQL NULL and anything else into text.
func nullText(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// nullString turns "" into SQL NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
