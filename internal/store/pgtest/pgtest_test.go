package pgtest

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestDSNIsolated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var schemas []string
	for i := range 2 {
		db, err := sql.Open("pgx", DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var schema string
		if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			t.Fatal(err)
		}
		schemas = append(schemas, schema)
		// The same table name in both: no clash.
		if _, err := db.ExecContext(ctx, `CREATE TABLE t (n int); INSERT INTO t VALUES (1)`); err != nil {
			t.Fatalf("DSN %d: %v", i, err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 1 {
			t.Errorf("DSN %d sees %d rows (%v)", i, n, err)
		}
	}
	if schemas[0] == schemas[1] || !strings.HasPrefix(schemas[0], "t_") {
		t.Errorf("schemas %v", schemas)
	}
}

// Without PostgreSQL binaries: skip with the install hint, or fail when CI is set. Runs
// the test binary again with no directories to search.
func TestMissingBinaries(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") == "1" {
		binDirs = func() []string { return []string{t.TempDir()} }
		DSN(t)
		t.Fatal("DSN returned without binaries")
	}
	for _, tc := range []struct {
		ci, want string
		fails    bool
	}{
		{"", "--- SKIP", false},
		{"true", "--- FAIL", true},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingBinaries$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_HELPER=1", "CI="+tc.ci, EnvDSN+"=", "HORDE_TEST_POSTGRES=")
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fails {
			t.Errorf("CI=%q: exit error %v, want failure %v\n%s", tc.ci, err, tc.fails, out)
		}
		for _, w := range []string{tc.want, "apt-get install -y postgresql", "no PostgreSQL binaries"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("CI=%q: output does not contain %q:\n%s", tc.ci, w, out)
			}
		}
	}
}
