package store

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

type targetKind int

const (
	targetSQLiteFile targetKind = iota
	targetSQLiteMemory
	targetPostgres
)

// target is a parsed DSN.
type target struct {
	kind     targetKind
	path     string // SQLite file
	dsn      string // PostgreSQL, as given
	redacted string // safe to log and to put in errors
}

// schemeRE matches a URL-style scheme. Two characters at least, so that a Windows drive
// letter ("C:\...") still reads as a path.
var schemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]+):`)

const dsnExamples = `"sqlite:/var/lib/horde/horde.db", a file path, "sqlite::memory:" (tests) or "postgres://user:password@host:5432/horde"`

func parseDSN(dsn string) (target, error) {
	s := strings.TrimSpace(dsn)
	if s == "" {
		return target{}, fmt.Errorf("store: empty database DSN: set one, e.g. %s", dsnExamples)
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return target{kind: targetPostgres, dsn: s, redacted: redactURL(s)}, nil
	case s == ":memory:", lower == "sqlite::memory:":
		return target{kind: targetSQLiteMemory, redacted: "sqlite::memory:"}, nil
	case strings.HasPrefix(lower, "sqlite:"):
		p := s[len("sqlite:"):]
		p = strings.TrimPrefix(p, "//") // sqlite:///abs/path
		if p == "" {
			return target{}, fmt.Errorf("store: DSN %q names no file: use e.g. %s", s, dsnExamples)
		}
		return target{kind: targetSQLiteFile, path: p, redacted: "sqlite:" + p}, nil
	}
	if m := schemeRE.FindStringSubmatch(s); m != nil {
		// Name only the scheme: the rest may hold a password.
		return target{}, fmt.Errorf("store: unsupported database DSN scheme %q: use %s", m[1]+":", dsnExamples)
	}
	return target{kind: targetSQLiteFile, path: s, redacted: "sqlite:" + s}, nil
}

// redactURL returns a PostgreSQL URL with the password (in the user info or a password=
// parameter) replaced by "xxxxx". A URL that does not parse is reduced to its scheme.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redactRough(s)
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// redactRough redacts a URL that net/url refuses: it keeps the scheme, user, host and path,
// replaces what follows "user:" in the authority and drops the query.
func redactRough(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return "(unparsable)"
	}
	scheme, rest := s[:i+3], s[i+3:]
	if q := strings.IndexAny(rest, "?#"); q >= 0 {
		rest = rest[:q] + "?…"
	}
	authority, path := rest, ""
	if slash := strings.IndexByte(rest, '/'); slash >= 0 {
		authority, path = rest[:slash], rest[slash:]
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		user := authority[:at]
		if colon := strings.IndexByte(user, ':'); colon >= 0 {
			user = user[:colon] + ":xxxxx"
		}
		authority = user + authority[at:]
	}
	return scheme + authority + path
}

// urlPassword returns the password a PostgreSQL URL carries, if any.
func urlPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return p
	}
	return u.Query().Get("password")
}

// scrubbed is an error whose text has had secrets removed but which still unwraps to its
// cause, so errors.Is and errors.As keep working.
type scrubbed struct {
	msg   string
	cause error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.cause }

// scrubErr builds an error from msg with every secret replaced by "xxxxx".
func scrubErr(cause error, secrets []string, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	for _, s := range secrets {
		if s == "" {
			continue
		}
		msg = strings.ReplaceAll(msg, s, "xxxxx")
		if e := url.QueryEscape(s); e != s {
			msg = strings.ReplaceAll(msg, e, "xxxxx")
		}
		if e := url.PathEscape(s); e != s {
			msg = strings.ReplaceAll(msg, e, "xxxxx")
		}
	}
	if cause == nil {
		cause = errors.New(msg)
	}
	return &scrubbed{msg: msg, cause: cause}
}
