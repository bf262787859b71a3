package store

import (
	"strings"
	"testing"
	"time"
)

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT * FROM t WHERE a = ? AND b IN (?, ?)`, `SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)`},
		{`SELECT '?' , ? FROM t`, `SELECT '?' , $1 FROM t`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`SELECT "we?ird", ?`, `SELECT "we?ird", $1`},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{`SELECT ?, 'unterminated ?`, `SELECT $1, 'unterminated ?`},
		{`SELECT ? -- trailing?`, `SELECT $1 -- trailing?`},
		{strings.Repeat("?,", 11) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12"},
	} {
		if got := dialectPostgres.rebind(tc.in); got != tc.want {
			t.Errorf("postgres rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := dialectSQLite.rebind(tc.in); got != tc.in {
			t.Errorf("sqlite rebind(%q) = %q, want it unchanged", tc.in, got)
		}
	}
	if got := placeholders(3); got != "?, ?, ?" {
		t.Errorf("placeholders(3) = %q", got)
	}
}

func TestTimeArgAndScan(t *testing.T) {
	in := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 5*3600+1800))
	want := time.Date(2025, 1, 1, 21, 34, 5, 123456000, time.UTC)
	s := dialectSQLite.timeArg(in).(string)
	if s != "2025-01-01T21:34:05.123456Z" {
		t.Errorf("sqlite timeArg = %q", s)
	}
	if pg := dialectPostgres.timeArg(in).(time.Time); !pg.Equal(want) || pg.Location() != time.UTC {
		t.Errorf("postgres timeArg = %v", pg)
	}
	for _, src := range []any{s, []byte(s), want.In(time.Local), "2025-01-01T22:34:05.123456+01:00"} {
		var got time.Time
		if err := (timeCol{&got}).Scan(src); err != nil {
			t.Fatalf("Scan(%v): %v", src, err)
		}
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("Scan(%#v) = %v, want %v in UTC", src, got, want)
		}
	}
	var got time.Time
	if err := (timeCol{&got}).Scan("yesterday"); err == nil {
		t.Error("Scan(yesterday) did not fail")
	}
	// Fixed width keeps text order equal to time order.
	a := dialectSQLite.timeArg(time.Date(2025, 1, 1, 0, 0, 0, 100_000_000, time.UTC)).(string)
	b := dialectSQLite.timeArg(time.Date(2025, 1, 1, 0, 0, 0, 120_000_000, time.UTC)).(string)
	c := dialectSQLite.timeArg(time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC)).(string)
	if !(a < b && b < c) {
		t.Errorf("text order broken: %q %q %q", a, b, c)
	}
}

func TestParseDSN(t *testing.T) {
	for _, tc := range []struct {
		dsn      string
		kind     targetKind
		path     string
		redacted string
	}{
		{"sqlite:/var/lib/horde/v.db", targetSQLiteFile, "/var/lib/horde/v.db", "sqlite:/var/lib/horde/v.db"},
		{"sqlite:///var/lib/horde/v.db", targetSQLiteFile, "/var/lib/horde/v.db", "sqlite:/var/lib/horde/v.db"},
		{"SQLite:rel/v.db", targetSQLiteFile, "rel/v.db", "sqlite:rel/v.db"},
		{"./v.db", targetSQLiteFile, "./v.db", "sqlite:./v.db"},
		{"/abs/v.db", targetSQLiteFile, "/abs/v.db", "sqlite:/abs/v.db"},
		{"sqlite::memory:", targetSQLiteMemory, "", "sqlite::memory:"},
		{":memory:", targetSQLiteMemory, "", "sqlite::memory:"},
		{"postgres://u:hunter2@h:5432/d", targetPostgres, "", "postgres://u:xxxxx@h:5432/d"},
		{"postgresql://u@h/d?password=hunter2&sslmode=disable", targetPostgres, "", "postgresql://u@h/d?password=xxxxx&sslmode=disable"},
	} {
		got, err := parseDSN(tc.dsn)
		if err != nil {
			t.Errorf("parseDSN(%q): %v", tc.dsn, err)
			continue
		}
		if got.kind != tc.kind || got.path != tc.path || got.redacted != tc.redacted {
			t.Errorf("parseDSN(%q) = %+v, want kind %d path %q redacted %q", tc.dsn, got, tc.kind, tc.path, tc.redacted)
		}
	}
	for _, tc := range []struct{ dsn, want string }{
		{"", "empty database DSN"},
		{"   ", "empty database DSN"},
		{"sqlite:", "names no file"},
		{"mysql://root:hunter2@db/horde", `unsupported database DSN scheme "mysql:"`},
		{"redis:hunter2", `unsupported database DSN scheme "redis:"`},
	} {
		_, err := parseDSN(tc.dsn)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseDSN(%q) error = %v, want it to contain %q", tc.dsn, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("parseDSN(%q) error leaks the password: %v", tc.dsn, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:hunter2@h:5432/d?sslmode=disable": "postgres://u:xxxxx@h:5432/d?sslmode=disable",
		"postgres://u@h/d":                               "postgres://u@h/d",
		"postgres://u:hunter2@h:notaport/d":              "postgres://u:xxxxx@h:notaport/d",
		"postgres://u:hun@ter2@h:bad/d?password=hunter2": "postgres://u:xxxxx@h:bad/d?…",
		"postgres://h:bad/d%zz":                          "postgres://h:bad/d%zz",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
