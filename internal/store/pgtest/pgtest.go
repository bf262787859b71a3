// Package pgtest gives each test an empty PostgreSQL schema of its own.
//
// [DSN] returns the DSN of a new, empty schema (t_<random>) that is dropped when the test
// ends, so tests can run in parallel without seeing each other's rows. The schemas live in
// one database per test process (horde_test_<random>), created on first use and dropped by
// [Main]. The DSN selects the schema with search_path, so unqualified table names land in
// it. (A schema costs under a millisecond; CREATE DATABASE costs about 250 ms here.) The
// server behind it is, in order of preference:
//
//  1. the one named by HORDE_TEST_POSTGRES_DSN, if set (scripts/pg.sh start prints such a
//     line; scripts/test.sh uses it). Its role must be allowed to CREATE DATABASE.
//  2. a throwaway cluster this test process starts on first use: initdb and postgres from
//     PATH or /usr/lib/postgresql/*/bin, run as the postgres user when the tests run as root
//     (initdb refuses root), data in a temporary directory, listening on a free 127.0.0.1
//     port with fsync off. It takes about a second. Call [Main] from TestMain: it stops the
//     server and removes its files when the tests end. On Linux the server is also sent
//     SIGQUIT if the test process dies without stopping it (parent-death signal), so no
//     postgres process outlives `go test`.
//  3. none: without PostgreSQL binaries the test is skipped, or fails when CI is set, with
//     the install hint (apt-get install -y postgresql).
//
// HORDE_TEST_POSTGRES=skip skips every PostgreSQL test.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// EnvDSN names an existing server to use instead of starting one.
const EnvDSN = "HORDE_TEST_POSTGRES_DSN"

const installHint = "PostgreSQL is needed for these tests: install it (apt-get install -y postgresql), " +
	"or start one with `eval \"$(scripts/pg.sh start DIR)\"` and set " + EnvDSN +
	"; HORDE_TEST_POSTGRES=skip skips them"

var (
	once    sync.Once
	srv     server
	mu      sync.Mutex // guards stopped
	stopped bool
)

// server is the PostgreSQL the process uses, found or started once.
type server struct {
	adminDSN string  // a DSN with rights to CREATE DATABASE
	admin    *sql.DB // pool on adminDSN
	dbName   string  // this process's database
	dbDSN    string  // DSN of dbName
	db       *sql.DB // pool on dbDSN
	missing  bool    // no binaries and no EnvDSN
	err      error   // could not start or reach it
	cluster  *cluster
}

// Main runs the tests and then stops the throwaway server, if one was started. Use it as
// the whole of TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the throwaway server (if this process started one) and removes its files.
// Main calls it; call it yourself from a TestMain that cannot use Main. DSN fails after it.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if stopped {
		return
	}
	stopped = true
	once.Do(func() { srv.err = errors.New("pgtest: Stop was called before DSN") })
	if srv.db != nil {
		srv.db.Close()
	}
	if srv.admin != nil {
		if srv.dbName != "" && srv.cluster == nil { // a cluster's files go anyway
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := srv.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+srv.dbName+` WITH (FORCE)`)
			cancel()
			if err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: drop database %s: %v\n", srv.dbName, err)
			}
		}
		srv.admin.Close()
	}
	if srv.cluster != nil {
		srv.cluster.stop()
	}
}

// DSN returns a DSN whose search_path is a new empty schema, dropped when t ends. See the
// package doc for where the server comes from; without one, t is skipped (or fails when CI
// is set).
func DSN(t testing.TB) string {
	t.Helper()
	if os.Getenv("HORDE_TEST_POSTGRES") == "skip" {
		t.Skip("HORDE_TEST_POSTGRES=skip")
	}
	once.Do(setup)
	switch {
	case srv.missing && isCI():
		t.Fatalf("pgtest: no PostgreSQL binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin and CI is set. %s", installHint)
	case srv.missing:
		t.Skipf("pgtest: no PostgreSQL binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin. %s", installHint)
	case srv.err != nil:
		t.Fatal(srv.err)
	}
	mu.Lock()
	done := stopped
	mu.Unlock()
	if done {
		t.Fatal("pgtest: DSN called after Stop")
	}

	name := "t_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.db.ExecContext(ctx, `CREATE SCHEMA `+name); err != nil {
		t.Fatalf("pgtest: create schema %s in %s: %v", name, redact(srv.dbDSN), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := srv.db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+name+` CASCADE`); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	return withParam(srv.dbDSN, "search_path", name)
}

func setup() {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		srv.adminDSN = dsn
		srv.err = openAdmin(dsn)
		if srv.err != nil {
			srv.err = fmt.Errorf("pgtest: %s=%s is not usable: %w; unset it to let the tests start their own server",
				EnvDSN, redact(dsn), srv.err)
		}
		return
	}
	bin, ok := findBinaries()
	if !ok {
		srv.missing = true
		return
	}
	c, err := startCluster(bin)
	if err != nil {
		srv.err = fmt.Errorf("pgtest: start a throwaway PostgreSQL from %s: %w", bin, err)
		return
	}
	srv.cluster = c
	srv.adminDSN = c.dsn
	if err := openAdmin(c.dsn); err != nil {
		srv.err = fmt.Errorf("pgtest: throwaway PostgreSQL started but is not usable: %w", err)
	}
}

// openAdmin connects to the server and creates this process's database.
func openAdmin(dsn string) error {
	admin, err := openPool(dsn)
	if err != nil {
		return err
	}
	srv.admin = admin
	name := "horde_test_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	srv.dbName = name
	srv.dbDSN = withDatabase(dsn, name)
	srv.db, err = openPool(srv.dbDSN)
	return err
}

func openPool(dsn string) (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func isCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}

// withDatabase returns dsn pointing at database name instead.
func withDatabase(dsn, name string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + name
			u.RawPath = ""
			return u.String()
		}
	}
	return dsn + " dbname=" + name
}

// withParam returns dsn with the connection parameter key set to value.
func withParam(dsn, key, value string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + key + "=" + value
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || !strings.Contains(dsn, "://") {
		return "(a keyword/value DSN)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// findBinaries returns the directory holding initdb and postgres.
func findBinaries() (string, bool) {
	for _, d := range binDirs() {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, true
		}
	}
	return "", false
}

// binDirs lists where to look for initdb and postgres, best first. Tests replace it.
var binDirs = func() []string {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool { // newest first
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(versions[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(versions[j])))
		return vi > vj
	})
	dirs = append(dirs, versions...)
	return append(dirs, "/usr/local/pgsql/bin")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// cluster is a running throwaway server.
type cluster struct {
	dir  string
	dsn  string
	cmd  *exec.Cmd
	done chan struct{}
}

// creds says which user runs initdb and postgres; zero means this process's user.
type creds struct {
	set      bool
	uid, gid uint32
}

// dirPrefix names the temporary directories of throwaway clusters.
const dirPrefix = "horde-pgtest-"

// sweepStale removes the directories of throwaway clusters whose test process died without
// stopping them (a killed or timed-out `go test`; the server itself went with it). Ones
// younger than ten minutes are left alone: another test process may be starting one.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < 10*time.Minute {
			continue
		}
		if pid, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			n, _ := strconv.Atoi(strings.SplitN(string(pid), "\n", 2)[0])
			if n > 0 && alive(n) {
				continue
			}
		}
		os.RemoveAll(d)
	}
}

func startCluster(bin string) (c *cluster, err error) {
	sweepStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	var as creds
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, initdb refuses root and there is no postgres user to run it as (%w): "+
				"install postgresql (it creates the user) or run the tests as another user", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		as = creds{set: true, uid: uint32(uid), gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	password := randomHex(16)
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if as.set {
		if err := os.Chown(pwfile, int(as.uid), int(as.gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pwfile,
		"-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.SysProcAttr = procAttr(as, false)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(string(out)))
	}
	os.Remove(pwfile)

	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c, retry, err := runPostgres(bin, dir, data, port, as)
		if err == nil {
			c.dsn = fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", password, port)
			return c, nil
		}
		lastErr = err
		if !retry {
			break
		}
	}
	return nil, lastErr
}

// runPostgres starts the postmaster on port and waits until it accepts connections.
// retry reports a port clash worth another try.
func runPostgres(bin, dir, data string, port int, as creds) (c *cluster, retry bool, err error) {
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, false, err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "log_min_messages=warning")
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = procAttr(as, true)
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("start postgres: %w", err)
	}
	c = &cluster{dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(c.done)
	}()

	// Connect over the socket (trust) until it answers.
	probe := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", dir, port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-c.done:
			out, _ := os.ReadFile(logPath)
			clash := strings.Contains(string(out), "already in use")
			return nil, clash, fmt.Errorf("postgres exited at start (%v): %s", cmd.ProcessState, tail(string(out), 2000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgconn.Connect(ctx, probe)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return c, false, nil
		}
		if time.Now().After(deadline) {
			c.stop()
			out, _ := os.ReadFile(logPath)
			return nil, false, fmt.Errorf("postgres did not accept connections within 30s (%v): %s", err, tail(string(out), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop asks for a fast shutdown, waits, kills if it must, and removes the files.
func (c *cluster) stop() {
	if c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	os.RemoveAll(c.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
