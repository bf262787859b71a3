package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
)

// Migrations are embedded SQL files named NNNN_name.sql (one text for both engines) or
// NNNN_name.sqlite.sql and NNNN_name.postgres.sql (one per engine) when the engines need
// different SQL. Versions start at 1 and have no gaps. Each is applied in its own
// transaction and recorded in schema_migrations; a released migration is never edited,
// only followed by a new one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

// pgMigrationLock is the pg_advisory_xact_lock key that serialises migrations across
// processes opening the same PostgreSQL database ("horde-mg" in ASCII).
const pgMigrationLock int64 = 0x686f7264652d6d67

// loadMigrations returns the migrations for d, ordered by version.
func loadMigrations(fsys fs.FS, d dialect) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("store: read embedded migrations: %w", err)
	}
	type pick struct {
		neutral, own string // file names
		name         string
	}
	byVersion := map[int]*pick{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("store: migration file %q is not named NNNN_name[.sqlite|.postgres].sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		p := byVersion[v]
		if p == nil {
			p = &pick{name: m[2]}
			byVersion[v] = p
		}
		if p.name != m[2] {
			return nil, fmt.Errorf("store: migration %04d has two names, %q and %q", v, p.name, m[2])
		}
		switch m[3] {
		case "":
			p.neutral = e.Name()
		case d.String():
			p.own = e.Name()
		}
	}
	versions := make([]int, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	sort.Ints(versions)
	out := make([]migration, 0, len(versions))
	for i, v := range versions {
		if v != i+1 {
			return nil, fmt.Errorf("store: migration versions must run 1, 2, 3, … without gaps; %04d is missing", i+1)
		}
		p := byVersion[v]
		file := p.own
		if file == "" {
			file = p.neutral
		}
		if file == "" {
			return nil, fmt.Errorf("store: migration %04d_%s has no variant for %s", v, p.name, d)
		}
		text, err := fs.ReadFile(fsys, "migrations/"+file)
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", file, err)
		}
		out = append(out, migration{version: v, name: p.name, sql: string(text)})
	}
	return out, nil
}

// migrate brings the schema up to date, one migration per transaction. Every transaction
// first takes the migration lock (BEGIN IMMEDIATE on SQLite, an advisory lock on
// PostgreSQL) and then re-reads the version, so processes opening the same database at the
// same time apply each migration exactly once.
func (db *DB) migrate(ctx context.Context) error {
	migs, err := loadMigrations(migrationFiles, db.dialect)
	if err != nil {
		return err
	}
	for {
		applied, version, err := db.migrateStep(ctx, migs)
		if err != nil {
			return err
		}
		if applied == nil {
			db.log.Debug("database schema is up to date", "dialect", db.dialect.String(), "version", version)
			return nil
		}
		db.log.Info("applied database migration", "dialect", db.dialect.String(),
			"version", applied.version, "name", applied.name)
	}
}

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT NOT NULL PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`

// migrateStep applies the next pending migration, if any. It returns the migration it
// applied (nil when none was pending) and the schema version it found.
func (db *DB) migrateStep(ctx context.Context, migs []migration) (applied *migration, version int, err error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("store: migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if db.dialect == dialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, pgMigrationLock); err != nil {
			return nil, 0, fmt.Errorf("store: migrate: take the migration lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, createSchemaMigrations); err != nil {
		return nil, 0, fmt.Errorf("store: migrate: create schema_migrations: %w", err)
	}
	var current sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&current); err != nil {
		return nil, 0, fmt.Errorf("store: migrate: read the schema version: %w", err)
	}
	version = int(current.Int64)
	latest := len(migs)
	if version > latest {
		return nil, version, fmt.Errorf("store: the database schema is at version %d, newer than this horde binary knows (%d): "+
			"run a horde release at least as new as the one that last opened it, or point the DSN at another database", version, latest)
	}
	if version == latest {
		return nil, version, tx.Commit()
	}
	m := migs[version]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return nil, version, fmt.Errorf("store: migration %04d_%s failed: %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, db.dialect.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, db.now().UTC().Format(sqliteTimeLayout)); err != nil {
		return nil, version, fmt.Errorf("store: migration %04d_%s: record it: %w", m.version, m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, version, fmt.Errorf("store: migration %04d_%s: commit: %w", m.version, m.name, err)
	}
	return &m, version, nil
}
