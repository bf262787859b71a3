package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/computehorde/horde/internal/protocol"
)

func TestLoadMigrations(t *testing.T) {
	for _, d := range []dialect{dialectSQLite, dialectPostgres} {
		migs, err := loadMigrations(migrationFiles, d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if len(migs) == 0 || migs[0].version != 1 || migs[0].name != "init" {
			t.Fatalf("%s: migrations = %+v", d, migs)
		}
		for i, m := range migs {
			if m.version != i+1 || strings.TrimSpace(m.sql) == "" {
				t.Errorf("%s: migration %d = %+v", d, i, m)
			}
		}
	}
	sqlite, _ := loadMigrations(migrationFiles, dialectSQLite)
	pg, _ := loadMigrations(migrationFiles, dialectPostgres)
	if !strings.Contains(sqlite[0].sql, "STRICT") || strings.Contains(pg[0].sql, "STRICT") {
		t.Error("the engines did not get their own variant of 0001_init")
	}

	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string // error text; "" = ok
	}{
		{"neutral and variant", fstest.MapFS{
			"migrations/0001_a.sql": file("A"), "migrations/0002_b.sql": file("B"), "migrations/0002_b.sqlite.sql": file("B-lite"),
		}, ""},
		{"gap", fstest.MapFS{"migrations/0001_a.sql": file("A"), "migrations/0003_c.sql": file("C")}, "0002 is missing"},
		{"bad name", fstest.MapFS{"migrations/1_a.sql": file("A")}, "is not named NNNN_name"},
		{"two names", fstest.MapFS{"migrations/0001_a.sql": file("A"), "migrations/0001_b.postgres.sql": file("B")}, "has two names"},
		{"no variant", fstest.MapFS{"migrations/0001_a.postgres.sql": file("A")}, "has no variant for sqlite"},
	} {
		migs, err := loadMigrations(tc.files, dialectSQLite)
		if tc.want == "" {
			if err != nil || len(migs) != 2 || migs[1].sql != "B-lite" {
				t.Errorf("%s: %+v, %v", tc.name, migs, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// Opening a database twice applies nothing the second time and keeps the data.
func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	forEachReopenable(t, func(t *testing.T, dsn string) {
		ctx := testContext(t)
		db1 := openTest(t, dsn)
		if err := db1.CreateJob(ctx, testJob("job-1")); err != nil {
			t.Fatal(err)
		}
		db2 := openTest(t, dsn)
		v, err := db2.schemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		migs, _ := loadMigrations(migrationFiles, db2.dialect)
		if v != len(migs) {
			t.Errorf("schema version %d, want %d", v, len(migs))
		}
		var rows int
		if err := db2.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(migs) {
			t.Errorf("schema_migrations has %d rows (%v), want %d", rows, err, len(migs))
		}
		if _, err := db2.GetJob(ctx, "job-1"); err != nil {
			t.Errorf("job written before reopening: %v", err)
		}
	})
}

// Several processes opening a new database at once apply each migration exactly once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	forEachReopenable(t, func(t *testing.T, dsn string) {
		const n = 6
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				db, err := Open(testContext(t), Config{DSN: dsn, Logger: testLogger(t)})
				if err == nil {
					err = db.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
		}
		db := openTest(t, dsn)
		var rows int
		if err := db.r.QueryRowContext(testContext(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		migs, _ := loadMigrations(migrationFiles, db.dialect)
		if rows != len(migs) {
			t.Errorf("schema_migrations has %d rows, want %d", rows, len(migs))
		}
	})
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	forEachReopenable(t, func(t *testing.T, dsn string) {
		ctx := testContext(t)
		db := openTest(t, dsn)
		_, err := db.w.ExecContext(ctx, db.dialect.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			9999, "from_the_future", "2099-01-01T00:00:00.000000Z")
		if err != nil {
			t.Fatal(err)
		}
		db2, err := Open(ctx, Config{DSN: dsn})
		if err == nil {
			db2.Close()
			t.Fatal("Open of a database with a newer schema succeeded")
		}
		for _, want := range []string{"schema is at version 9999", "newer than this horde binary knows"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	})
}

// TestValidatorSpecMigration: 0002 rewrites the validator specs stored in the old Go-struct
// shape as upstream's V2JobRequest JSON, and leaves every other spec byte for byte.
func TestValidatorSpecMigration(t *testing.T) {
	t.Parallel()
	const (
		fullUUID = "6f0c1b2e-8d44-4c1e-9a53-0b7c2f6f1a11"
		bareUUID = "6f0c1b2e-8d44-4c1e-9a53-0b7c2f6f1a12"
	)
	oldSpecs := map[string]string{
		fullUUID: `{"UUID":"` + fullUUID + `","ExecutorClass":"always_on.test","DockerImage":"img\u003cx\u003e",` +
			`"Args":["echo","hi"],"Env":{"B":"1","A":"é"},` +
			`"Volume":{"volume_type":"inline","contents":"UEs=","relative_path":null},` +
			`"OutputUpload":{"output_upload_type":"single_file_put","url":"http://u/","relative_path":"out.txt","signed_headers":null},` +
			`"ArtifactsDir":"/artifacts","DownloadTimeLimit":30,"ExecutionTimeLimit":60,"UploadTimeLimit":20}`,
		bareUUID: `{"UUID":"` + bareUUID + `","ExecutorClass":"always_on.gpu-24gb","DockerImage":"img","Args":null,"Env":{},` +
			`"Volume":null,"OutputUpload":null,"ArtifactsDir":null,"DownloadTimeLimit":1,"ExecutionTimeLimit":2,"UploadTimeLimit":3}`,
	}
	kept := map[string]string{
		// Already upstream's shape, and a miner's spec that happens to use a Go-style key.
		"new-validator": `{"message_type":"V2JobRequest","docker_image":"img"}`,
		"miner":         `{"DockerImage":"miner's own"}`,
	}
	forEachReopenable(t, func(t *testing.T, dsn string) {
		ctx := testContext(t)
		db := openTest(t, dsn)
		for _, specs := range []map[string]string{oldSpecs, kept} {
			for id, spec := range specs {
				j := testJob(id)
				if id == "miner" {
					j.Role = RoleMiner
				}
				j.Spec = json.RawMessage(spec)
				if err := db.CreateJob(ctx, j); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Back to the schema before 0002, so that reopening applies it to these rows.
		if _, err := db.w.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version >= 2`); err != nil {
			t.Fatal(err)
		}
		db = openTest(t, dsn)

		want := map[string]protocol.V2JobRequest{
			fullUUID: {UUID: fullUUID, ExecutorClass: protocol.ExecutorClassAlwaysOnTest, DockerImage: "img<x>",
				Args:   []string{"echo", "hi"},
				Env:    protocol.OrderedMapOf(protocol.Entry[string]{Key: "B", Value: "1"}, protocol.Entry[string]{Key: "A", Value: "é"}),
				Volume: &protocol.Volume{Inline: &protocol.InlineVolume{Contents: "UEs="}},
				OutputUpload: &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
					RelativePath: "out.txt", URL: "http://u/"}},
				ArtifactsDir: new("/artifacts"), DownloadTimeLimit: 30, ExecutionTimeLimit: 60, UploadTimeLimit: 20},
			bareUUID: {UUID: bareUUID, ExecutorClass: protocol.ExecutorClassAlwaysOnGPU24GB, DockerImage: "img",
				Args: []string{}, DownloadTimeLimit: 1, ExecutionTimeLimit: 2, UploadTimeLimit: 3},
		}
		for id, w := range want {
			j, err := db.GetJob(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := protocol.DecodeFacilitatorToValidator(j.Spec)
			if err != nil {
				t.Fatalf("migrated spec %s is not upstream's JSON: %v", j.Spec, err)
			}
			if got, ok := msg.(*protocol.V2JobRequest); !ok || !reflect.DeepEqual(*got, w) {
				t.Errorf("migrated spec %s\n decodes as %+v\n want %+v", j.Spec, msg, w)
			}
			// SQLite writes the very bytes the validator writes now; PostgreSQL's json type
			// puts spaces around the separators.
			if enc, _ := protocol.Encode(&w); db.Dialect() == "sqlite" && string(j.Spec) != string(enc) {
				t.Errorf("migrated spec %s\n want %s", j.Spec, enc)
			}
		}
		for id, spec := range kept {
			if j, err := db.GetJob(ctx, id); err != nil || string(j.Spec) != spec {
				t.Errorf("spec of %s = %s, %v; want it untouched: %s", id, j.Spec, err, spec)
			}
		}
	})
}
