package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// workReceipt returns a WorkInterval receipt as a miner stores it: the payload encoded by
// the protocol package, countersigned when minerSig is set.
func workReceipt(tb testing.TB, job, miner string, class protocol.ExecutorClass, index, seconds int, ts time.Time, minerSig bool) Receipt {
	tb.Helper()
	p := protocol.WorkIntervalReceiptPayload{
		JobUUID: job, MinerHotkey: miner, ValidatorHotkey: validatorHK,
		Timestamp: protocol.NewTimestamp(ts), ExecutorClass: class, IntervalIndex: index,
		IntervalStart: protocol.NewTimestamp(ts.Add(-time.Duration(seconds) * time.Second)),
		IntervalEnd:   protocol.NewTimestamp(ts), WorkedSeconds: seconds,
	}
	payload, err := json.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	r := Receipt{
		Type: string(p.ReceiptType()), JobUUID: job, Seq: protocol.ReceiptSeq(p), ValidatorHotkey: validatorHK, MinerHotkey: miner,
		Timestamp: ts, Payload: payload, ValidatorSignature: "0x" + strings.Repeat("ab", 64),
	}
	if minerSig {
		r.MinerSignature = "0x" + strings.Repeat("cd", 64)
	}
	return r
}

// bulkColumns are the receipt columns insertReceiptsBulk writes (a column added later keeps
// its default).
const bulkColumns = `receipt_type, job_uuid, seq, validator_hotkey, miner_hotkey, timestamp, payload, validator_signature, miner_signature, created_at`

// insertReceiptsBulk stores rs in one transaction, many rows per INSERT: test setup for
// large tables, much faster than InsertReceipt one by one.
func insertReceiptsBulk(ctx context.Context, db *DB, rs []Receipt) error {
	const perStmt = 500 // 10 arguments each: under both engines' limits
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := db.dialect.timeArg(time.Now())
	for chunk := range slices.Chunk(rs, perStmt) {
		args := make([]any, 0, 10*len(chunk))
		for _, r := range chunk {
			args = append(args, r.Type, r.JobUUID, r.Seq, r.ValidatorHotkey, r.MinerHotkey, db.dialect.timeArg(r.Timestamp),
				string(r.Payload), r.ValidatorSignature, nullString(r.MinerSignature), now)
		}
		stmt := `INSERT INTO receipts (` + bulkColumns + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat(`(`+placeholders(10)+`), `, len(chunk)), ", ")
		if _, err := tx.ExecContext(ctx, db.dialect.rebind(stmt), args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func TestWorkedSeconds(t *testing.T) {
	t.Parallel()
	const (
		minerA = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
		minerB = "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy"
		classS = protocol.ExecutorClassSpinUp4minGPU24GB
		classL = protocol.ExecutorClassAlwaysOnLLMA6000
	)
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	to := from.Add(72 * time.Minute)
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		for _, r := range []Receipt{
			workReceipt(t, "job-1", minerA, classS, 0, 600, from.Add(10*time.Minute), true),
			workReceipt(t, "job-2", minerA, classS, 0, 300, from.Add(20*time.Minute), true),
			workReceipt(t, "job-3", minerA, classL, 0, 120, from, true), // at from: counts
			workReceipt(t, "job-4", minerB, classS, 0, 450, to.Add(-time.Microsecond), true),
			// Not counted: no miner signature, at to, before from.
			workReceipt(t, "job-5", minerA, classS, 0, 600, from.Add(30*time.Minute), false),
			workReceipt(t, "job-6", minerA, classS, 0, 600, to, true),
			workReceipt(t, "job-7", minerB, classL, 0, 600, from.Add(-time.Microsecond), true),
		} {
			if ok, err := db.InsertReceipt(ctx, r); !ok || err != nil {
				t.Fatalf("insert %s: %v %v", r.JobUUID, ok, err)
			}
		}
		// Another receipt type with an executor class in its payload is not work.
		other := testReceipt("JobStartedReceipt", "job-1", from.Add(time.Minute))
		other.MinerSignature = "0xsig"
		if _, err := db.InsertReceipt(ctx, other); err != nil {
			t.Fatal(err)
		}
		// A receipt countersigned after it was stored counts: the validator's own copy of
		// interval 1, completed by the miner's copy pulled later.
		late := workReceipt(t, "job-8", minerB, classS, 1, 50, from.Add(time.Hour), false)
		if _, err := db.InsertReceipt(ctx, late); err != nil {
			t.Fatal(err)
		}

		want := []WorkTotal{
			{MinerHotkey: minerB, ExecutorClass: string(classS), WorkedSeconds: 450, Receipts: 1},
			{MinerHotkey: minerA, ExecutorClass: string(classL), WorkedSeconds: 120, Receipts: 1},
			{MinerHotkey: minerA, ExecutorClass: string(classS), WorkedSeconds: 900, Receipts: 2},
		}
		check := func(want []WorkTotal) {
			t.Helper()
			got, err := db.WorkedSeconds(ctx, from, to)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("WorkedSeconds =\n%+v\nwant\n%+v", got, want)
			}
		}
		check(want)
		late.MinerSignature = "0xsig"
		if ok, err := db.InsertReceipt(ctx, late); !ok || err != nil {
			t.Fatalf("pulled countersigned copy: %v %v", ok, err)
		}
		want[0].WorkedSeconds, want[0].Receipts = 500, 2
		check(want)

		if got, err := db.WorkedSeconds(ctx, to.Add(time.Hour), to.Add(2*time.Hour)); err != nil || len(got) != 0 {
			t.Errorf("empty window: %v %v", got, err)
		}
	})
}

// Every 10-minute interval of a job counts: receipts are keyed (type, job, seq) and a
// WorkInterval receipt's seq is its interval index.
func TestWorkedSecondsCountsEveryIntervalOfAJob(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		class := protocol.ExecutorClassSpinUp4minGPU24GB
		for i, secs := range []int{600, 600, 600, 300} {
			r := workReceipt(t, "long-job", minerHK, class, i, secs, from.Add(time.Duration(i+1)*10*time.Minute), true)
			if ok, err := db.InsertReceipt(ctx, r); !ok || err != nil {
				t.Fatalf("interval %d not stored: %v %v", i, ok, err)
			}
			// A second copy of the same interval is not counted twice.
			if ok, err := db.InsertReceipt(ctx, r); ok || err != nil {
				t.Fatalf("interval %d stored twice: %v %v", i, ok, err)
			}
		}
		got, err := db.WorkedSeconds(ctx, from, from.Add(time.Hour))
		want := []WorkTotal{{MinerHotkey: minerHK, ExecutorClass: string(class), WorkedSeconds: 2100, Receipts: 4}}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("WorkedSeconds = %+v (%v), want %+v", got, err, want)
		}
	})
}

// A payload without executor_class is not counted and a worked_seconds that is not a JSON
// number counts as 0 (rather than failing the sum), the same on both engines.
func TestWorkedSecondsOddPayloads(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		good := workReceipt(t, "job-1", minerHK, protocol.ExecutorClassAlwaysOnCPU8c16GB, 0, 42, from, true)
		noClass := good
		noClass.JobUUID = "job-2"
		noClass.Payload = json.RawMessage(fmt.Sprintf(`{"job_uuid": "job-2", "worked_seconds": 600, "timestamp": %q}`, from.Format(time.RFC3339)))
		notNumber := good
		notNumber.JobUUID = "job-3"
		notNumber.Payload = json.RawMessage(`{"executor_class": "always_on.llm.a6000", "worked_seconds": "600"}`)
		if err := insertReceiptsBulk(ctx, db, []Receipt{good, noClass, notNumber}); err != nil {
			t.Fatal(err)
		}
		got, err := db.WorkedSeconds(ctx, from, from.Add(time.Minute))
		want := []WorkTotal{
			{MinerHotkey: minerHK, ExecutorClass: string(protocol.ExecutorClassAlwaysOnCPU8c16GB), WorkedSeconds: 42, Receipts: 1},
			{MinerHotkey: minerHK, ExecutorClass: string(protocol.ExecutorClassAlwaysOnLLMA6000), WorkedSeconds: 0, Receipts: 1},
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("WorkedSeconds = %+v (%v), want %+v", got, err, want)
		}
	})
}

// Receipts stored before migration 0005 are counted after it: the index (and on PostgreSQL
// the generated columns) cover the rows already there.
func TestWorkReceiptsMigration(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	forEachReopenable(t, func(t *testing.T, dsn string) {
		ctx := testContext(t)
		db := openTest(t, dsn)
		undo := `DROP INDEX receipts_work`
		if db.Dialect() == "postgres" {
			undo += `; ALTER TABLE receipts DROP COLUMN work_class, DROP COLUMN work_seconds`
		}
		if _, err := db.w.ExecContext(ctx, undo+`; DELETE FROM schema_migrations WHERE version >= 5`); err != nil {
			t.Fatal(err)
		}
		if db.Dialect() == "postgres" {
			if _, err := db.w.ExecContext(ctx, `SELECT work_class FROM receipts`); err == nil {
				t.Fatal("work_class is still there")
			}
		}
		r := workReceipt(t, "job-1", minerHK, protocol.ExecutorClassSpinUp4minGPU24GB, 2, 600, from, true)
		if ok, err := db.InsertReceipt(ctx, r); !ok || err != nil {
			t.Fatalf("insert: %v %v", ok, err)
		}
		db = openTest(t, dsn)
		got, err := db.WorkedSeconds(ctx, from, from.Add(time.Minute))
		want := []WorkTotal{{MinerHotkey: minerHK, ExecutorClass: string(protocol.ExecutorClassSpinUp4minGPU24GB), WorkedSeconds: 600, Receipts: 1}}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("WorkedSeconds = %+v (%v), want %+v", got, err, want)
		}
	})
}
