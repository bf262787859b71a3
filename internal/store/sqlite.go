package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SQLite settings for every connection. busy_timeout covers other processes using the same
// file; within a process all writes go through one connection. synchronous=FULL makes a
// commit durable before it returns (state is written before it is acted on). Its cost is an
// fsync per commit, which job submissions share: they are committed in batches (see
// DB.SubmitFacJob). synchronous=NORMAL would skip that fsync (measured: about a quarter more
// submissions per second) but lose the last commits on a power failure, so it is not used.
const (
	sqliteCommonParams = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	sqliteWriterParams = sqliteCommonParams + "&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	sqliteReaderParams = sqliteCommonParams + "&_pragma=query_only(1)"
	sqliteReaders      = 4
)

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// SQLite primary result codes (the low byte of an extended code).
const (
	sqliteCantOpen = 14
	sqliteNotADB   = 26
	sqliteReadOnly = 8
	sqlitePerm     = 3
)

func openSQLiteFile(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite database %s: cannot make the path absolute: %w", path, err)
	}
	if err := checkSQLitePath(abs); err != nil {
		return nil, err
	}
	base := "file:" + sqliteURIPath(abs) + "?"
	db := &DB{dialect: dialectSQLite}
	db.w, err = sql.Open("sqlite", base+sqliteWriterParams)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite database %s: %w", abs, err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxLifetime(0)
	db.w.SetConnMaxIdleTime(0)
	// The first connection applies journal_mode=WAL, which reads the file header: this is
	// where a file that is not a database is refused.
	if err := pingSQLite(ctx, db.w); err != nil {
		db.Close()
		return nil, sqliteOpenError(abs, err)
	}
	db.r, err = sql.Open("sqlite", base+sqliteReaderParams)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: sqlite database %s: %w", abs, err)
	}
	db.r.SetMaxOpenConns(sqliteReaders)
	db.r.SetMaxIdleConns(sqliteReaders)
	if err := db.r.PingContext(ctx); err != nil {
		db.Close()
		return nil, sqliteOpenError(abs, err)
	}
	return db, nil
}

// sqliteBusy is SQLITE_BUSY's primary result code.
const sqliteBusy = 5

// pingSQLite opens the first connection. Switching a file to WAL takes an exclusive lock for
// which SQLite does not always run the busy handler (two processes creating the same new
// database, say), so SQLITE_BUSY is retried here for as long as busy_timeout would wait.
func pingSQLite(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := db.PingContext(ctx)
		if err == nil || sqliteCode(err) != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

var memoryDBs atomic.Int64

// openSQLiteMemory opens a private in-memory database: a uniquely named shared-cache
// database on a single connection that is never closed while the DB is open.
func openSQLiteMemory(ctx context.Context) (*DB, error) {
	name := fmt.Sprintf("file:horde-memory-%d-%d?mode=memory&cache=shared&%s&_txlock=immediate",
		os.Getpid(), memoryDBs.Add(1), sqliteCommonParams)
	w, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite in-memory database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: sqlite in-memory database: %w", err)
	}
	return &DB{dialect: dialectSQLite, w: w, r: w}, nil
}

// checkSQLitePath explains the usual ways a path cannot hold a database before SQLite is
// asked, because SQLite's own messages ("unable to open database file") name no cause.
// It creates the parent directory if it is missing.
func checkSQLitePath(abs string) error {
	fi, err := os.Stat(abs)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("store: sqlite database %s is a directory: give a file path, e.g. %s",
			abs, filepath.Join(abs, "horde.db"))
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("store: sqlite database %s is not a regular file (%s): give the path of a database file", abs, fi.Mode().Type())
	case err == nil:
		f, err := os.OpenFile(abs, os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("store: sqlite database %s cannot be opened for reading and writing: %w; "+
					"give this user (uid %d) read and write access to it and its directory", abs, err, os.Getuid())
			}
			return fmt.Errorf("store: sqlite database %s cannot be opened: %w", abs, err)
		}
		defer f.Close()
		head := make([]byte, len(sqliteMagic))
		n, err := io.ReadFull(f, head)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("store: sqlite database %s cannot be read: %w", abs, err)
		}
		if n > 0 && (n < len(sqliteMagic) || !bytes.Equal(head, sqliteMagic)) {
			return fmt.Errorf("store: %s exists but is not a SQLite database file: check the path, or move the file away to start a new database", abs)
		}
		return nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		// ENOTDIR: a parent is a file; MkdirAll says so.
		dir := filepath.Dir(abs)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("store: sqlite database %s: cannot create its directory %s: %w; create it yourself or choose another path", abs, dir, err)
		}
		return nil
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("store: sqlite database %s cannot be reached: %w; give this user (uid %d) access to its directory", abs, err, os.Getuid())
	default:
		return fmt.Errorf("store: sqlite database %s: %w", abs, err)
	}
}

// sqliteURIPath escapes the characters that would end the path part of a SQLite URI.
func sqliteURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(p))
}

// sqliteCode returns the SQLite primary result code inside err, or 0.
func sqliteCode(err error) int {
	var coder interface{ Code() int }
	if errors.As(err, &coder) {
		return coder.Code() & 0xff
	}
	return 0
}

func sqliteOpenError(abs string, err error) error {
	switch sqliteCode(err) {
	case sqliteNotADB:
		return fmt.Errorf("store: %s is not a SQLite database file (%w): check the path, or move the file away to start a new database", abs, err)
	case sqliteCantOpen:
		return fmt.Errorf("store: sqlite database %s cannot be opened or created (%w): check that the directory %s exists and is writable by this user (uid %d)",
			abs, err, filepath.Dir(abs), os.Getuid())
	case sqliteReadOnly, sqlitePerm:
		return fmt.Errorf("store: sqlite database %s is read-only (%w): it needs write access to the file and its directory (for the -wal and -shm files)", abs, err)
	}
	return fmt.Errorf("store: sqlite database %s: %w", abs, err)
}
