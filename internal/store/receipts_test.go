package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	validatorHK = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
	minerHK     = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
)

func testReceipt(typ, uuid string, ts time.Time) Receipt {
	payload := fmt.Sprintf(`{"executor_class": "always_on.gpu-24gb", "is_organic": true, "job_uuid": %q, "miner_hotkey": %q, `+
		`"receipt_type": %q, "timestamp": %q, "ttl": 7, "validator_hotkey": %q}`,
		uuid, minerHK, typ, ts.UTC().Format("2006-01-02T15:04:05.999999Z"), validatorHK)
	return Receipt{
		Type: typ, JobUUID: uuid, ValidatorHotkey: validatorHK, MinerHotkey: minerHK, Timestamp: ts,
		Payload: json.RawMessage(payload), ValidatorSignature: "0x" + strings.Repeat("ab", 64),
	}
}

func TestReceipts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		db.now = func() time.Time { return now }
		ts := time.Date(2025, 6, 1, 11, 59, 58, 123456789, time.FixedZone("EEST", 3*3600))
		r := testReceipt("JobStartedReceipt", "0e1d6c2a-93b4-4f7e-8d26-6e1b7ad0c9f3", ts)
		// Exact bytes: odd spacing, key order and escapes survive.
		r.Payload = json.RawMessage(`{"z": 1,   "a": "\u00e9 é \"q\"", "n": 1.50, "ts": "2025-06-01T08:59:58.123456Z"}`)

		ins, err := db.InsertReceipt(ctx, r)
		if err != nil || !ins {
			t.Fatalf("InsertReceipt = %v, %v", ins, err)
		}
		got, err := db.GetReceipt(ctx, r.Type, r.JobUUID)
		if err != nil {
			t.Fatal(err)
		}
		want := r
		want.Timestamp = ts.UTC().Truncate(time.Microsecond)
		want.CreatedAt = now
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GetReceipt =\n%+v\nwant\n%+v", got, want)
		}
		if string(got.Payload) != string(r.Payload) {
			t.Errorf("payload bytes changed: %s", got.Payload)
		}

		// A second copy of another signing (another validator signature): ignored.
		second := testReceipt(r.Type, r.JobUUID, ts.Add(time.Hour))
		second.ValidatorSignature = "0x" + strings.Repeat("aa", 64)
		second.MinerSignature = "0x" + strings.Repeat("cd", 64)
		if ins, err := db.InsertReceipt(ctx, second); err != nil || ins {
			t.Errorf("second InsertReceipt = %v, %v; want false, nil", ins, err)
		}
		if got, _ := db.GetReceipt(ctx, r.Type, r.JobUUID); !reflect.DeepEqual(got, want) {
			t.Errorf("the second copy replaced the first: %+v", got)
		}
		// Same job, other type: a separate row.
		if ins, err := db.InsertReceipt(ctx, testReceipt("JobFinishedReceipt", r.JobUUID, ts)); err != nil || !ins {
			t.Errorf("JobFinishedReceipt for the same job: %v, %v", ins, err)
		}

		// Miner signature: set, set again (same), refuse a different one.
		sig := "0x" + strings.Repeat("ef", 64)
		if err := db.SetMinerSignature(ctx, r.Type, r.JobUUID, sig); err != nil {
			t.Fatal(err)
		}
		if err := db.SetMinerSignature(ctx, r.Type, r.JobUUID, sig); err != nil {
			t.Errorf("setting the same signature again: %v", err)
		}
		err = db.SetMinerSignature(ctx, r.Type, r.JobUUID, "0x00")
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already has a different miner signature") {
			t.Errorf("different signature: %v", err)
		}
		if got, _ := db.GetReceipt(ctx, r.Type, r.JobUUID); got.MinerSignature != sig {
			t.Errorf("miner signature = %q", got.MinerSignature)
		}
		if err := db.SetMinerSignature(ctx, r.Type, "nope", sig); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetMinerSignature(missing): %v", err)
		}
		if err := db.SetMinerSignature(ctx, r.Type, r.JobUUID, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetMinerSignature(empty): %v", err)
		}
		if _, err := db.GetReceipt(ctx, "JobAcceptedReceipt", r.JobUUID); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetReceipt(missing): %v", err)
		}

		for name, bad := range map[string]Receipt{
			"no type":      func() Receipt { b := testReceipt("", "u", ts); return b }(),
			"no uuid":      func() Receipt { b := testReceipt("JobStartedReceipt", "", ts); return b }(),
			"no timestamp": func() Receipt { b := testReceipt("JobStartedReceipt", "u", time.Time{}); return b }(),
			"no signature": func() Receipt { b := testReceipt("JobStartedReceipt", "u", ts); b.ValidatorSignature = ""; return b }(),
			"bad payload":  func() Receipt { b := testReceipt("JobStartedReceipt", "u", ts); b.Payload = []byte("{"); return b }(),
		} {
			if _, err := db.InsertReceipt(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("InsertReceipt(%s): %v", name, err)
			}
		}
	})
}

func TestListReceipts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		// name → (offset from base, miner)
		for i, off := range []time.Duration{
			5 * time.Second, 100 * time.Millisecond, 120 * time.Millisecond, time.Second, 999999 * time.Microsecond, 0,
		} {
			typ := "JobFinishedReceipt"
			if i == 3 {
				typ = "JobStartedReceipt"
			}
			r := testReceipt(typ, fmt.Sprintf("r%d", i), base.Add(off))
			if i%2 == 1 {
				r.MinerHotkey = "other"
			}
			if _, err := db.InsertReceipt(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(f ReceiptFilter) string {
			rs, err := db.ListReceipts(ctx, f)
			if err != nil {
				t.Fatalf("ListReceipts(%+v): %v", f, err)
			}
			var s []string
			for _, r := range rs {
				s = append(s, r.JobUUID)
			}
			return strings.Join(s, ",")
		}
		for _, tc := range []struct {
			name string
			f    ReceiptFilter
			want string
		}{
			{"all", ReceiptFilter{}, "r5,r1,r2,r4,r3,r0"},
			{"limit", ReceiptFilter{Limit: 3}, "r5,r1,r2"},
			// Since is inclusive and Until exclusive, to the microsecond.
			{"since", ReceiptFilter{Since: base.Add(120 * time.Millisecond)}, "r2,r4,r3,r0"},
			{"until", ReceiptFilter{Until: base.Add(time.Second)}, "r5,r1,r2,r4"},
			{"window", ReceiptFilter{Since: base.Add(100 * time.Millisecond), Until: base.Add(999999 * time.Microsecond)}, "r1,r2"},
			{"window in another zone", ReceiptFilter{
				Since: base.Add(100 * time.Millisecond).In(time.FixedZone("PDT", -7*3600)),
				Until: base.Add(time.Second).In(time.FixedZone("JST", 9*3600)),
			}, "r1,r2,r4"},
			{"miner", ReceiptFilter{MinerHotkey: "other"}, "r5,r1,r3"},
			{"miner and window", ReceiptFilter{MinerHotkey: minerHK, Since: base.Add(time.Millisecond), Limit: 2}, "r2,r4"},
			{"type", ReceiptFilter{Type: "JobStartedReceipt"}, "r3"},
			{"type and miner", ReceiptFilter{Type: "JobFinishedReceipt", MinerHotkey: "other"}, "r5,r1"},
		} {
			if got := ids(tc.f); got != tc.want {
				t.Errorf("%s: ListReceipts = %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}

// Times come back equal to what went in, truncated to the microsecond, in UTC, on every
// engine, including edges of the range.
func TestTimeRoundTrip(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		for i, ts := range []time.Time{
			time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.FixedZone("odd", 5*3600+45*60)),
			time.Date(2025, 1, 2, 3, 4, 5, 999, time.UTC), // sub-microsecond: truncated to .000000
			time.Date(2025, 1, 2, 3, 4, 5, 100000, time.Local),
			time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC),
			time.Date(2999, 12, 31, 23, 59, 59, 999999000, time.UTC),
			time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			time.Now(), // with a monotonic reading
		} {
			uuid := fmt.Sprintf("t%d", i)
			want := ts.UTC().Truncate(time.Microsecond)
			j := testJob(uuid)
			j.CreatedAt, j.UpdatedAt = ts, ts.Add(time.Nanosecond)
			if err := db.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
			gotJob, err := db.GetJob(ctx, uuid)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.InsertReceipt(ctx, testReceipt("JobStartedReceipt", uuid, ts)); err != nil {
				t.Fatal(err)
			}
			gotR, err := db.GetReceipt(ctx, "JobStartedReceipt", uuid)
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]time.Time{"created_at": gotJob.CreatedAt, "timestamp": gotR.Timestamp} {
				if got != want { // == : same instant, same location (UTC), no monotonic reading
					t.Errorf("%s of %v: got %v, want %v", name, ts, got, want)
				}
			}
			// The exact instant is found by an inclusive Since.
			rs, err := db.ListReceipts(ctx, ReceiptFilter{Since: want, Until: want.Add(time.Microsecond)})
			if err != nil || len(rs) != 1 || rs[0].JobUUID != uuid {
				t.Errorf("ListReceipts at exactly %v: %v, %v", want, rs, err)
			}
		}
	})
}

// Eight concurrent copies of the same receipt: exactly one is inserted. On reopenable
// engines half go through a second DB handle, as a second process would.
func TestInsertReceiptConcurrent(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dsn := b.dsn(t)
			handles := []*DB{openTest(t, dsn)}
			if b.reopenable {
				handles = append(handles, openTest(t, dsn))
			}
			ctx := testContext(t)
			for round := range 5 {
				const n = 8
				uuid := fmt.Sprintf("race-%d", round)
				ins := make([]bool, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range n {
					wg.Go(func() {
						<-start
						r := testReceipt("JobStartedReceipt", uuid, time.Now())
						r.ValidatorSignature = fmt.Sprintf("0x%02d", i)
						ins[i], errs[i] = handles[i%len(handles)].InsertReceipt(ctx, r)
					})
				}
				close(start)
				wg.Wait()
				count, winner := 0, -1
				for i := range n {
					if errs[i] != nil {
						t.Errorf("goroutine %d: %v", i, errs[i])
					}
					if ins[i] {
						count++
						winner = i
					}
				}
				if count != 1 {
					t.Fatalf("round %d: %d inserted, want 1", round, count)
				}
				got, err := handles[0].GetReceipt(ctx, "JobStartedReceipt", uuid)
				if err != nil || got.ValidatorSignature != fmt.Sprintf("0x%02d", winner) {
					t.Errorf("stored copy %q (%v), want the winner's 0x%02d", got.ValidatorSignature, err, winner)
				}
			}
		})
	}
}

func BenchmarkInsertReceipt(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			db := openTest(b, be.dsn(b))
			ctx := testContext(b)
			ts := time.Now()
			i := 0
			for b.Loop() {
				i++
				if _, err := db.InsertReceipt(ctx, testReceipt("JobStartedReceipt", fmt.Sprintf("bench-%d", i), ts)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ReceiptsStoredBetween selects and orders by when the store inserted a receipt, not by
// the receipt's own timestamp: a miner's receipts page holds what it stored during the
// page's five minutes, in the order it stored them.
func TestReceiptsStoredBetween(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		page := time.Date(2026, 1, 21, 13, 15, 0, 0, time.UTC) // a page boundary
		var now time.Time
		db.now = func() time.Time { return now }
		for _, r := range []struct {
			uuid   string
			stored time.Duration // after page
			ts     time.Duration // the receipt's timestamp, after page
		}{
			{"before", -time.Microsecond, -time.Second},
			{"a", 0, -10 * time.Second}, // generated in the previous page, stored in this one
			{"c", 2 * time.Minute, 2 * time.Minute},
			{"b", 2 * time.Minute, time.Minute}, // same store time as c: then type, then UUID
			{"d", 3 * time.Minute, 10 * time.Minute},
			{"last", 5*time.Minute - time.Microsecond, 5 * time.Minute},
			{"next", 5 * time.Minute, 4 * time.Minute}, // generated in this page, stored in the next
		} {
			now = page.Add(r.stored)
			rec := testReceipt("JobStartedReceipt", r.uuid, page.Add(r.ts))
			rec.MinerSignature = "0x" + strings.Repeat("cd", 64)
			if _, err := db.InsertReceipt(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		now = page.Add(2 * time.Minute)
		fin := testReceipt("JobFinishedReceipt", "c", page)
		if _, err := db.InsertReceipt(ctx, fin); err != nil {
			t.Fatal(err)
		}

		ids := func(from, to time.Time) string {
			rs, err := db.ReceiptsStoredBetween(ctx, from, to)
			if err != nil {
				t.Fatalf("ReceiptsStoredBetween: %v", err)
			}
			var s []string
			for _, r := range rs {
				s = append(s, r.JobUUID+"/"+strings.TrimPrefix(r.Type, "Job"))
			}
			return strings.Join(s, ",")
		}
		const wantPage = "a/StartedReceipt,c/FinishedReceipt,b/StartedReceipt,c/StartedReceipt,d/StartedReceipt,last/StartedReceipt"
		if got := ids(page, page.Add(5*time.Minute)); got != wantPage {
			t.Errorf("page:\n got %s\nwant %s", got, wantPage)
		}
		// Bounds in another zone mean the same instants.
		if got := ids(page.In(time.FixedZone("PDT", -7*3600)), page.Add(5*time.Minute).In(time.FixedZone("JST", 9*3600))); got != wantPage {
			t.Errorf("page in other zones: %s", got)
		}
		if got, want := ids(page.Add(2*time.Minute), page.Add(3*time.Minute)), "c/FinishedReceipt,b/StartedReceipt,c/StartedReceipt"; got != want {
			t.Errorf("window: got %s, want %s", got, want)
		}
		if got := ids(page.Add(5*time.Minute), page.Add(10*time.Minute)); got != "next/StartedReceipt" {
			t.Errorf("next page: %s", got)
		}
		if got := ids(page.Add(time.Hour), page.Add(2*time.Hour)); got != "" {
			t.Errorf("empty range: %s", got)
		}
		rs, err := db.ReceiptsStoredBetween(ctx, page, page.Add(time.Microsecond))
		if err != nil || len(rs) != 1 || rs[0].MinerSignature == "" || !rs[0].CreatedAt.Equal(page) ||
			string(rs[0].Payload) != string(testReceipt("JobStartedReceipt", "a", page.Add(-10*time.Second)).Payload) {
			t.Errorf("full row = %+v, %v", rs, err)
		}
	})
}

// TestInsertReceiptCompletesCountersignature: the validator's own copy of a receipt gets the
// miner's countersignature from a pulled copy of the same signing, once; each interval of a
// job is its own row.
func TestInsertReceiptCompletesCountersignature(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		ts := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		own := testReceipt("WorkInterval", "0e1d6c2a-93b4-4f7e-8d26-6e1b7ad0c9f3", ts)
		for seq := range 2 {
			own.Seq = seq
			if ok, err := db.InsertReceipt(ctx, own); err != nil || !ok {
				t.Fatalf("interval %d: %v, %v", seq, ok, err)
			}
		}
		pulled := own
		pulled.Seq = 1
		pulled.MinerSignature = "0x" + strings.Repeat("cd", 64)
		if ok, err := db.InsertReceipt(ctx, pulled); err != nil || !ok {
			t.Fatalf("countersigned copy: %v, %v; want stored", ok, err)
		}
		again := pulled
		again.MinerSignature = "0x" + strings.Repeat("ee", 64)
		if ok, err := db.InsertReceipt(ctx, again); err != nil || ok {
			t.Errorf("a second countersignature: %v, %v; want ignored", ok, err)
		}
		rows, err := db.ListReceipts(ctx, ReceiptFilter{Type: "WorkInterval"})
		if err != nil || len(rows) != 2 || rows[0].MinerSignature != "" || rows[1].MinerSignature != pulled.MinerSignature {
			t.Errorf("rows %+v, %v; want interval 0 alone and interval 1 countersigned", rows, err)
		}
	})
}

func TestInsertReceipts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		ts := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		var rs []Receipt
		for i := range 50 {
			rs = append(rs, testReceipt("JobStartedReceipt", fmt.Sprintf("job-%02d", i), ts))
		}
		if n, err := db.InsertReceipts(ctx, rs); err != nil || n != 50 {
			t.Fatalf("InsertReceipts = %d, %v", n, err)
		}
		if n, err := db.InsertReceipts(ctx, rs[:10]); err != nil || n != 0 {
			t.Errorf("again: %d, %v; want 0 stored", n, err)
		}
		bad := append([]Receipt{testReceipt("JobStartedReceipt", "job-new", ts)}, Receipt{Type: "X"})
		if n, err := db.InsertReceipts(ctx, bad); !errors.Is(err, ErrInvalid) || n != 0 {
			t.Errorf("a batch with an invalid receipt: %d, %v", n, err)
		}
		if _, err := db.GetReceipt(ctx, "JobStartedReceipt", "job-new"); !errors.Is(err, ErrNotFound) {
			t.Errorf("part of a refused batch was written: %v", err)
		}
	})
}
