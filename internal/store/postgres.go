package store

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

const (
	pgDefaultConnectTimeout = 10 * time.Second
	pgDefaultMaxOpenConns   = 10
)

func openPostgres(ctx context.Context, dsn string, maxOpen int) (*DB, error) {
	secrets := []string{urlPassword(dsn)}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN with the password redacted on a best-effort basis;
		// scrub it ourselves too.
		return nil, scrubErr(err, secrets, "store: invalid PostgreSQL DSN %s: %s", redactURL(dsn), pgParseMessage(err))
	}
	// The password may also come from PGPASSWORD or ~/.pgpass.
	secrets = append(secrets, cfg.Password)
	if !dsnHasParam(dsn, "connect_timeout") {
		cfg.ConnectTimeout = pgDefaultConnectTimeout
	}
	where := pgAddr(cfg.Host, cfg.Port)

	sqldb := stdlib.OpenDB(*cfg)
	if maxOpen <= 0 {
		maxOpen = pgDefaultMaxOpenConns
	}
	sqldb.SetMaxOpenConns(maxOpen)
	sqldb.SetMaxIdleConns(maxOpen)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, pgConnectError(err, where, cfg, secrets)
	}
	return &DB{dialect: dialectPostgres, w: sqldb, r: sqldb}, nil
}

func pgAddr(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return "socket " + host + "/.s.PGSQL." + strconv.Itoa(int(port))
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

func dsnHasParam(dsn, name string) bool {
	u, err := url.Parse(dsn)
	return err == nil && u.Query().Has(name)
}

// pgParseMessage is pgx's reason without the DSN it quotes.
func pgParseMessage(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return msg[i+3:]
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return msg
}

// pgConnectError explains why connecting failed: refused, unreachable, wrong password,
// missing database. The password never appears in the text.
func pgConnectError(err error, where string, cfg *pgx.ConnConfig, secrets []string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return scrubErr(err, secrets,
				"store: PostgreSQL at %s refused the login of user %q (%s): check the user and password in the DSN",
				where, cfg.User, pgErr.Message)
		case "3D000":
			return scrubErr(err, secrets,
				"store: PostgreSQL at %s has no database %q: create it (createdb %s) or fix the database name in the DSN",
				where, cfg.Database, cfg.Database)
		case "53300":
			return scrubErr(err, secrets,
				"store: PostgreSQL at %s has no free connections (%s): raise max_connections or lower the pool size",
				where, pgErr.Message)
		}
		return scrubErr(err, secrets, "store: PostgreSQL at %s: %s (SQLSTATE %s)", where, pgErr.Message, pgErr.Code)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return scrubErr(err, secrets, "store: cannot connect to PostgreSQL at %s: connection refused: is PostgreSQL running at %s?", where, where)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return scrubErr(err, secrets, "store: cannot resolve the PostgreSQL host %q (%s): check the host in the DSN", cfg.Host, dnsErr.Err)
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() {
		return scrubErr(err, secrets, "store: timed out connecting to PostgreSQL at %s: is PostgreSQL running at %s, and reachable from here?", where, where)
	}
	if errors.Is(err, syscall.ENOENT) && strings.HasPrefix(where, "socket ") {
		return scrubErr(err, secrets, "store: cannot connect to PostgreSQL at %s: no such socket: is PostgreSQL running, with its socket in %s?", where, cfg.Host)
	}
	return scrubErr(err, secrets, "store: cannot connect to PostgreSQL at %s: %s", where, err.Error())
}
