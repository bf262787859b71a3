// Package store is horde's persistent state: jobs and receipts, kept in SQLite (the embedded
// default, pure Go through modernc.org/sqlite) or PostgreSQL (through pgx), chosen by the DSN.
//
// [Open] connects, checks that the database is usable and applies the embedded schema
// migrations. The same typed methods work on both engines; SQL is written once with `?`
// placeholders and rewritten for PostgreSQL (see [rebind]).
//
// Times are stored in UTC with microsecond precision: values are truncated to the microsecond
// on the way in, and come back as UTC [time.Time] values that are equal to what was stored on
// both engines (SQLite keeps them as fixed-width "2006-01-02T15:04:05.000000Z" text, which sorts
// in time order; PostgreSQL as timestamptz).
//
// JSON documents (job spec and result, receipt payload) are kept byte for byte as text; the
// store checks only that they are valid JSON.
//
// Errors that callers branch on wrap the sentinels [ErrNotFound], [ErrDuplicate],
// [ErrConflict] and [ErrInvalid]; test them with [errors.Is].
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"
)

// Sentinel errors. Errors returned by the store wrap them with %w.
var (
	// ErrNotFound: the job or receipt does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: a job with that UUID already exists.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrConflict: the row exists but is not in the state the call required (a job's status
	// is not one of the expected ones, or a receipt already has another miner signature).
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid: the caller passed a value the store refuses to write (missing key, bad JSON).
	ErrInvalid = errors.New("store: invalid argument")
)

// Config says which database to open.
type Config struct {
	// DSN selects the engine and the database:
	//   - "sqlite:PATH" or a bare PATH: a SQLite file, created (with its directory) if missing;
	//   - "sqlite::memory:": a private in-memory SQLite database, lost on Close (tests only);
	//   - "postgres://user:password@host:5432/dbname?sslmode=disable" (or "postgresql://"):
	//     PostgreSQL; without connect_timeout in the DSN, connecting gives up after 10 s.
	// An empty DSN is an error: a role must choose where its state lives.
	DSN string
	// Logger receives open and migration events. The password is never logged. Nil discards.
	Logger *slog.Logger
	// Existing refuses a SQLite file that does not exist yet (an error wrapping ErrNotFound)
	// instead of creating it: for tools that read a role's database, where a wrong path
	// would otherwise show an empty new database and leave it behind.
	Existing bool
	// MaxOpenConns caps the PostgreSQL connection pool (default 10). SQLite ignores it: it
	// uses one writer connection and a small pool of readers.
	MaxOpenConns int
}

// DB is an open store. It is safe for concurrent use by multiple goroutines.
type DB struct {
	dialect dialect
	// w takes every write. On SQLite it holds exactly one connection (so writers queue in Go
	// instead of failing with SQLITE_BUSY) and starts transactions with BEGIN IMMEDIATE.
	w *sql.DB
	// r serves reads. On a SQLite file it is a separate read-only pool (WAL readers do not
	// block the writer); otherwise it is w.
	r   *sql.DB
	log *slog.Logger
	now func() time.Time
	// stmts are the statements of preparedSQL prepared on SQLite's writer; nil on
	// PostgreSQL. Read-only after Open.
	stmts map[string]*sql.Stmt
	// submits gathers concurrent SubmitFacJob calls into one transaction.
	submits submitQueue
	// keyCache holds the API keys APIKeyByHashCached found lately.
	keyCache apiKeyCache
}

// Open opens the database named by cfg.DSN, checks that it can be used and applies pending
// migrations. Errors name the cause and what to do about it, and never contain the password.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	var db *DB
	switch t.kind {
	case targetSQLiteFile:
		if cfg.Existing {
			if _, serr := os.Stat(t.path); errors.Is(serr, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: no sqlite database at %s", ErrNotFound, t.path)
			}
		}
		db, err = openSQLiteFile(ctx, t.path)
	case targetSQLiteMemory:
		db, err = openSQLiteMemory(ctx)
	case targetPostgres:
		db, err = openPostgres(ctx, t.dsn, cfg.MaxOpenConns)
	}
	if err != nil {
		return nil, err
	}
	db.log = log.With("db", t.redacted)
	db.now = time.Now
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.prepareStatements(ctx); err != nil {
		db.Close()
		return nil, err
	}
	db.submits.init()
	return db, nil
}

// Close closes the connection pools. It may be called on a partly opened DB.
func (db *DB) Close() error {
	if db == nil {
		return nil
	}
	var errs []error
	for _, st := range db.stmts {
		errs = append(errs, st.Close())
	}
	if db.r != nil && db.r != db.w {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	return errors.Join(errs...)
}

// Dialect reports the engine: "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.dialect.String() }
