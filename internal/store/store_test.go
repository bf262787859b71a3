package store

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/store/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster (if the tests started one) at the end.
func TestMain(m *testing.M) { pgtest.Main(m) }

// backend is one engine the tests run against.
type backend struct {
	name string
	// dsn returns a DSN for a new, empty database. Reopenable backends can be opened again
	// with the same DSN and see the same data.
	dsn        func(tb testing.TB) string
	reopenable bool
}

var backends = []backend{
	{name: "sqlite", reopenable: true, dsn: func(tb testing.TB) string {
		return "sqlite:" + filepath.Join(tb.TempDir(), "horde.db")
	}},
	{name: "sqlite-memory", dsn: func(testing.TB) string { return "sqlite::memory:" }},
	{name: "postgres", reopenable: true, dsn: func(tb testing.TB) string { return pgtest.DSN(tb) }},
}

// forEachBackend runs fn in a parallel subtest per engine, each with a fresh database.
func forEachBackend(t *testing.T, fn func(t *testing.T, db *DB)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, openTest(t, b.dsn(t)))
		})
	}
}

// forEachReopenable is forEachBackend for tests that open the same database more than
// once; fn gets the DSN.
func forEachReopenable(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, b := range backends {
		if !b.reopenable {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.dsn(t))
		})
	}
}

func openTest(tb testing.TB, dsn string) *DB {
	tb.Helper()
	db, err := Open(testContext(tb), Config{DSN: dsn, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// schemaVersion returns the highest applied migration.
func (db *DB) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// TestOpenExisting: with Existing, a SQLite file that is not there is refused (ErrNotFound,
// naming the path) and not created; one that is there opens.
func TestOpenExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "role.db")
	if _, err := Open(t.Context(), Config{DSN: "sqlite:" + path, Existing: true}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(missing, Existing) = %v", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Existing created %s: %v", filepath.Dir(path), err)
	}
	db, err := Open(t.Context(), Config{DSN: "sqlite:" + path})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(t.Context(), Config{DSN: "sqlite:" + path, Existing: true})
	if err != nil {
		t.Fatalf("Open(existing, Existing) = %v", err)
	}
	db.Close()
}
