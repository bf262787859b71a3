package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/computehorde/horde/internal/store/pgtest"
)

func TestOpenSQLiteFile(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "new", "nested", "horde.db")
	db := openTest(t, path) // a bare path; the missing directories are created
	if db.Dialect() != "sqlite" {
		t.Errorf("Dialect() = %q", db.Dialect())
	}
	var mode string
	if err := db.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	var fk, busy int
	if err := db.r.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("reader foreign_keys = %d (%v), want 1", fk, err)
	}
	if err := db.r.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy < 1000 {
		t.Errorf("reader busy_timeout = %d (%v)", busy, err)
	}
	if _, err := db.r.ExecContext(ctx, `DELETE FROM jobs`); err == nil {
		t.Error("the reader pool accepted a write")
	}
	// An empty file (touch horde.db) is a new database, not an error.
	empty := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	openTest(t, "sqlite:"+empty)
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte("these are not the tables you are looking for\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.db")
	if err := os.WriteFile(short, []byte("SQLite"), 0o600); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(dir, "plainfile")
	if err := os.WriteFile(aFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	closedPort := closedLoopbackPort(t)
	// A server that accepts TCP connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	silentAddr := silent.Addr().String()

	for _, tc := range []struct {
		name, dsn string
		want      []string
		is        error
	}{
		{"empty", "", []string{"empty database DSN", "sqlite:"}, nil},
		{"bad scheme", "mysql://root:hunter2@db:3306/horde", []string{`unsupported database DSN scheme "mysql:"`, "postgres://"}, nil},
		{"directory", "sqlite:" + dir, []string{dir + " is a directory", "give a file path"}, nil},
		{"not a database", notDB, []string{notDB + " exists but is not a SQLite database file", "move the file away"}, nil},
		{"short file", short, []string{"is not a SQLite database file"}, nil},
		{"parent is a file", filepath.Join(aFile, "sub", "horde.db"), []string{"cannot create its directory", "not a directory", "choose another path"}, nil},
		{"postgres refused", fmt.Sprintf("postgres://horde:hunter2@127.0.0.1:%d/horde?sslmode=disable&connect_timeout=3", closedPort),
			[]string{fmt.Sprintf("is PostgreSQL running at 127.0.0.1:%d?", closedPort), "connection refused"}, syscall.ECONNREFUSED},
		{"postgres silent", "postgres://horde:hunter2@" + silentAddr + "/horde?sslmode=disable&connect_timeout=1",
			[]string{"timed out connecting to PostgreSQL at " + silentAddr, "is PostgreSQL running at " + silentAddr}, nil},
		{"postgres bad DSN", "postgres://horde:hunter2@127.0.0.1:notaport/horde", []string{"invalid PostgreSQL DSN postgres://horde:xxxxx@127.0.0.1:notaport/horde", "invalid port"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(testContext(t), Config{DSN: tc.dsn})
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", tc.dsn)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %q", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestOpenUnreadableFile(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := filepath.Join(t.TempDir(), "locked.db")
	if err := os.WriteFile(path, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := Open(testContext(t), Config{DSN: path})
	if err == nil || !strings.Contains(err.Error(), "cannot be opened for reading and writing") {
		t.Errorf("error = %v", err)
	}
}

// Wrong password and missing database, against the test server. The wrong-password case
// needs a server that asks for passwords (the throwaway cluster does; a trust-only server
// from HORDE_TEST_POSTGRES_DSN skips it).
func TestOpenPostgresLoginErrors(t *testing.T) {
	t.Parallel()
	good := pgtest.DSN(t)
	u, err := url.Parse(good)
	if err != nil {
		t.Skip("HORDE_TEST_POSTGRES_DSN is not a URL")
	}
	t.Run("wrong password", func(t *testing.T) {
		bad := *u
		bad.User = url.UserPassword(u.User.Username(), "wrong-hunter2")
		db, err := Open(testContext(t), Config{DSN: bad.String()})
		if err == nil {
			db.Close()
			t.Skip("the server accepts any password (trust authentication)")
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("refused the login of user %q", u.User.Username())) ||
			!strings.Contains(err.Error(), "check the user and password") {
			t.Errorf("error = %q", err)
		}
		if strings.Contains(err.Error(), "wrong-hunter2") {
			t.Errorf("error leaks the password: %q", err)
		}
	})
	t.Run("missing database", func(t *testing.T) {
		bad := *u
		bad.Path = "/no_such_db_here"
		_, err := Open(testContext(t), Config{DSN: bad.String()})
		if err == nil || !strings.Contains(err.Error(), `has no database "no_such_db_here"`) {
			t.Errorf("error = %v", err)
		}
		if p, ok := u.User.Password(); ok && p != "" && err != nil && strings.Contains(err.Error(), p) {
			t.Errorf("error leaks the password: %q", err)
		}
	})
	t.Run("logs without the password", func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		db, err := Open(testContext(t), Config{DSN: good, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if !strings.Contains(buf.String(), "applied database migration") {
			t.Errorf("no migration logged:\n%s", buf.String())
		}
		if p, ok := u.User.Password(); ok && p != "" && strings.Contains(buf.String(), p) {
			t.Errorf("log leaks the password:\n%s", buf.String())
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Open(ctx, Config{DSN: good}); err == nil {
			t.Error("Open with a cancelled context succeeded")
		}
	})
}

// closedLoopbackPort returns a 127.0.0.1 port that nothing listens on.
func closedLoopbackPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
